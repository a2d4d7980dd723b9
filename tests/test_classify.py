"""Sequence and text classification: tables, tokenizer, training, export, executor verify, bad input."""

from __future__ import annotations

import json
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coreml_lstm.classify import SequenceClassifier, TextClassifier, Tokenizer, load_classifier, predict_classes, verify_classifier
from coreml_lstm.classify.data import SequenceDataConfig, TextDataConfig, read_sequences, read_texts, stratified_split
from coreml_lstm.classify.model import NetConfig, SequenceNet
from coreml_lstm.classify.train import classification_metrics
from coreml_lstm.errors import ConfigError, DataError
from coreml_lstm.export import read_metadata

TINY = dict(hidden_size=8, epochs=25, patience=25, batch_size=16, lr=1e-2)


def err(fn, *a, **k) -> str:
    with pytest.raises(DataError) as e:
        fn(*a, **k)
    assert "\n" not in str(e.value)
    return str(e.value)


def gestures(n: int = 48, seed: int = 0, lengths=(6, 14)) -> pd.DataFrame:
    """Long table: 'up' / 'down' / 'flat' trends on channel a, noise on b, unequal lengths, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        label = ("up", "down", "flat")[s % 3]
        slope = {"up": 1.0, "down": -1.0, "flat": 0.0}[label]
        for t in range(int(rng.integers(*lengths))):
            rows.append({"id": f"s{s}", "t": t, "a": 5 + slope * 0.4 * t + 0.1 * rng.normal(), "b": rng.normal(), "label": label})
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # time sorting is the reader's job


@pytest.fixture(scope="module")
def seq_clf():
    return SequenceClassifier(series_id="id", time="t", conv_channels=[8, 8], conv_kernels=[5, 3], bidirectional=True, **TINY).fit(gestures())


# -- tables ----------------------------------------------------------------------------------


def test_long_layout_sorts_by_time_and_keeps_unequal_lengths():
    frame = pd.DataFrame({"id": ["b", "a", "b", "a", "a"], "t": [1, 2, 0, 0, 1], "x": [11.0, 2.0, 10.0, 0.0, 1.0], "label": ["q", "p", "q", "p", "p"]})
    samples, channels = read_sequences(frame, SequenceDataConfig(series_id="id", time="t"))
    assert channels == ["x"]
    assert samples.keys == ["b", "a"] and samples.labels == ["q", "p"]
    np.testing.assert_array_equal(samples.x[0][:, 0], [10, 11])
    np.testing.assert_array_equal(samples.x[1][:, 0], [0, 1, 2])
    assert samples.rows == [1, 2]  # first source row of each series


def test_long_layout_reads_the_whole_table_at_once(monkeypatch):
    """One sort of the whole table, not a pandas selection, sort and duplicate check per series
    (3.4 ms a series: 8,000 series took 28 s); the samples are views of one array."""
    def refuse(*a, **k):
        raise AssertionError("per-series pandas work")

    for method in ("sort_values", "duplicated"):
        monkeypatch.setattr(pd.Series, method, refuse)
        monkeypatch.setattr(pd.DataFrame, method, refuse)
    monkeypatch.setattr(pd.core.groupby.SeriesGroupBy, "groups", property(refuse))
    frame = pd.DataFrame({"id": ["b", "a", "b", "a", "c"], "t": [1, 2, 0, 0, 5], "x": [11.0, 2.0, 10.0, 0.0, 7.0], "label": ["q", "p", "q", "p", "p"]})
    samples, _ = read_sequences(frame, SequenceDataConfig(series_id="id", time="t"))
    assert samples.keys == ["b", "a", "c"] and [x[:, 0].tolist() for x in samples.x] == [[10, 11], [0, 2], [7]]
    assert all(x.base is not None and x.base is samples.x[0].base for x in samples.x)


def test_wide_layout_trailing_empty_cells_make_shorter_sequences(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("label,t0,t1,t2,t3\n1,0.5,1.5,2.5,3.5\n2,9,8,,\n1,1,2,3,\n")
    samples, channels = read_sequences(p, SequenceDataConfig(layout="wide"))
    assert channels == ["value"] and [len(x) for x in samples.x] == [4, 2, 3]
    np.testing.assert_array_equal(samples.x[1][:, 0], [9, 8])
    assert samples.labels == [1, 2, 1]  # integer labels stay integers


def test_wide_layout_fits_with_integer_labels():
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        n = int(rng.integers(4, 9))
        vals = (np.arange(n) * (1 if i % 2 else -1)).astype(float) + 0.1 * rng.normal(size=n)
        rows.append([i % 2 + 1] + list(vals) + [np.nan] * (8 - n))
    frame = pd.DataFrame(rows, columns=["label"] + [f"t{k}" for k in range(8)])
    clf = SequenceClassifier(layout="wide", **TINY).fit(frame)
    assert clf.classes_ == [1, 2] and clf.max_length_ == 8
    assert clf.metrics_["accuracy"] >= 0.75
    # A max_length below the longest sample names the option that set the bound, and the fix.
    with pytest.raises(DataError, match=r"; the model takes at most 5 \(max_length: raise it to 8, the longest sample's, or leave it out to take the longest\)$"):
        SequenceClassifier(layout="wide", max_length=5, **TINY).fit(frame)
    assert clf.predict([np.arange(6.0), -np.arange(3.0)]) == [2, 1]


def test_string_labels_classes_metrics_and_normaliser_from_training_rows_only(seq_clf):
    assert seq_clf.classes_ == ["down", "flat", "up"]
    assert seq_clf.channels_ == ["a", "b"]
    assert seq_clf.metrics_["accuracy"] >= 0.8
    assert np.asarray(seq_clf.metrics_["confusion"]).sum() == seq_clf.metrics_["n"]
    # The normaliser comes from the training part of the split, not the validation part.
    frame = gestures()
    samples, _ = read_sequences(frame, SequenceDataConfig(series_id="id", time="t"))
    y = np.asarray([seq_clf.classes_.index(v) for v in samples.labels])
    train, val = stratified_split(y, 0.2, seed=0)
    rows = np.concatenate([samples.x[i] for i in train])
    np.testing.assert_allclose(seq_clf.normalizer_.mean, rows.mean(0), rtol=1e-6)
    np.testing.assert_allclose(seq_clf.normalizer_.std, rows.std(0), rtol=1e-6)
    everything = np.concatenate(samples.x)
    assert not np.allclose(seq_clf.normalizer_.mean, everything.mean(0), rtol=1e-6)


def test_padded_batches_give_each_sample_its_own_result():
    """Packing and masking: a sample padded inside a batch gets exactly what it gets alone."""
    torch.manual_seed(0)
    for cell, bi in (("lstm", True), ("gru", False)):
        net = SequenceNet(NetConfig(cell=cell, hidden_size=6, bidirectional=bi, conv_channels=[4, 4], conv_kernels=[3, 3]), 3, n_channels=2).eval()
        xs = [torch.randn(n, 2) for n in (3, 7, 5)]
        batch = torch.zeros(3, 7, 2)
        for i, x in enumerate(xs):
            batch[i, : len(x)] = x
        with torch.no_grad():
            together = net.logits(batch, torch.tensor([3, 7, 5]))
            alone = torch.cat([net.logits(x[None]) for x in xs])
        np.testing.assert_allclose(together.numpy(), alone.numpy(), atol=1e-6)


def test_metrics_by_hand():
    m = classification_metrics(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), ["a", "b", "c"])
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["accuracy"] == pytest.approx(0.6)
    # F1: a = 0.5, b = 0.8, c = 0 -> macro 0.4333
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_same_seed_same_model():
    a = SequenceClassifier(series_id="id", time="t", **{**TINY, "epochs": 3}).fit(gestures())
    b = SequenceClassifier(series_id="id", time="t", **{**TINY, "epochs": 3}).fit(gestures())
    for k, v in a.model_.state_dict().items():
        torch.testing.assert_close(v, b.model_.state_dict()[k], rtol=0, atol=0)


def test_save_and_load_without_pickle(tmp_path, seq_clf):
    d = seq_clf.save(tmp_path / "run")
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "metrics.json", "model.safetensors", "validation.safetensors"]
    back = load_classifier(d)
    assert isinstance(back, SequenceClassifier) and back.classes_ == seq_clf.classes_
    table = gestures(9, seed=5)
    np.testing.assert_allclose(back.predict_proba(table), seq_clf.predict_proba(table), atol=1e-6)
    with pytest.raises(ConfigError, match="holds a SequenceClassifier, not a TextClassifier"):
        TextClassifier.load(d)


LABEL_TEXTS = ["007", "7", "08", "0", "-3", "42", "+3", "-0", "1.0", "2.0", "0.5", "True", "False", "NA", "nan", "x", " y", "1e3",
               "9" * 19, "9" * 30]


def _csv_labels(draw_labels, layout: str, path) -> None:
    """Write a table whose labels are ``draw_labels`` (one sample each) in ``layout``."""
    if layout == "long":
        lines = ["id,t,a,label"] + [f"s{i},{t},{t + i},{lab}" for i, lab in enumerate(draw_labels) for t in range(2)]
    elif layout == "wide":
        lines = ["label,t0,t1"] + [f"{lab},{i},1" for i, lab in enumerate(draw_labels)]
    else:
        lines = ["text,label"] + [f"word{i} more,{lab}" for i, lab in enumerate(draw_labels)]
    path.write_text("\n".join(lines) + "\n")


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.sampled_from(LABEL_TEXTS), min_size=1, max_size=6), layout=st.sampled_from(["long", "wide", "text"]))
def test_csv_labels_are_their_text_or_all_canonical_integers(labels, layout):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.csv"
        _csv_labels(labels, layout, path)
        if layout == "text":
            got = read_texts(path, TextDataConfig()).labels
        else:
            got = read_sequences(path, SequenceDataConfig(layout=layout, series_id="id", time="t"))[0].labels
    words = [lab.strip() for lab in labels]
    integers = all(w.lstrip("-").isdigit() and str(int(w)) == w and abs(int(w)) < 2**63 for w in words)
    assert got == ([int(w) for w in words] if integers else words)  # "007" and "7" were one class 7, "1.0" the int 1, "True" a bool's text
    assert all(type(v) is (int if integers else str) for v in got)


def test_a_dataframes_labels_keep_their_dtype():
    frame = pd.DataFrame({"id": [0, 0, 1, 1], "t": [0, 1, 0, 1], "a": [1.0, 2, 3, 4]})
    for values, want in (([1.0, 1.0, 2.0, 2.0], [1, 2]), ([0.5, 0.5, 1.5, 1.5], [0.5, 1.5]), (["007", "007", "7", "7"], ["007", "7"]),
                         ([3, 3, 7, 7], [3, 7])):
        assert read_sequences(frame.assign(label=values), SequenceDataConfig(series_id="id", time="t"))[0].labels == want


COLUMN_KINDS = {"float": lambda i: f"{0.5 * i}", "int": lambda i: str(i), "bool": lambda i: ("True", "False")[i % 2],
                "text": lambda i: ("bob", "ann")[i % 2], "date": lambda i: f"2020-01-0{1 + i % 9}"}


@settings(max_examples=30, deadline=None)
@given(kinds=st.lists(st.sampled_from(sorted(COLUMN_KINDS)), min_size=1, max_size=5), csv=st.booleans())
def test_default_channels_are_the_numeric_columns(kinds, csv):
    """As the forecaster picks its features: numbers and booleans, not text or dates ('bob' was a
    channel and failed as a non-numeric value)."""
    names = [f"{k}{j}" for j, k in enumerate(kinds)]
    frame = pd.DataFrame({"id": [i // 2 for i in range(8)], "t": [i % 2 for i in range(8)], "label": [("p", "q")[i // 2 % 2] for i in range(8)],
                          **{n: [COLUMN_KINDS[k](i) for i in range(8)] for n, k in zip(names, kinds)}})
    numeric = [n for n, k in zip(names, kinds) if k in ("float", "int", "bool")]
    with tempfile.TemporaryDirectory() as tmp:
        source = frame
        if csv:
            source = Path(tmp) / "t.csv"
            frame.to_csv(source, index=False)
        else:
            source = frame.assign(**{n: pd.to_numeric(frame[n]) for n, k in zip(names, kinds) if k in ("float", "int")},
                                  **{n: frame[n] == "True" for n, k in zip(names, kinds) if k == "bool"})
        config = SequenceDataConfig(series_id="id", time="t")
        if not numeric:
            assert err(read_sequences, source, config).endswith(": no numeric channel columns besides 'id', 't', 'label'")
            return
        samples, channels = read_sequences(source, config)
    assert channels == numeric and samples.x[0].shape == (2, len(numeric))


def test_channels_listed_twice_or_naming_a_key_column():
    with pytest.raises(DataError) as e:
        SequenceDataConfig(series_id="id", channels=["a", "b", "a"])
    assert str(e.value) == "channels: column 'a' is listed twice" and e.value.cli == "--channel: column 'a' is listed twice"
    with pytest.raises(DataError) as e:
        SequenceClassifier(series_id="id", time="t", channels=["a", "t"])
    assert str(e.value) == "channels: column 't' is also the time column"


# -- bad input, one line each ----------------------------------------------------------------


def test_only_one_class():
    frame = gestures()
    frame["label"] = "up"
    assert err(SequenceClassifier(series_id="id", time="t").fit, frame) == "training data: column 'label': only one class ('up'); a classifier needs at least two"


def test_one_series_with_two_labels(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("id,t,a,label\ns0,0,1.0,up\ns0,1,2.0,up\ns1,0,1.0,down\ns0,2,3.0,down\n")
    assert err(SequenceClassifier(series_id="id", time="t").fit, p) == f"{p}: column 'label', row 4: series 's0' has label 'down' here but 'up' in row 1"


def test_missing_columns_and_non_numeric_cells(tmp_path):
    frame = gestures(6)
    assert err(SequenceClassifier(series_id="id", time="t", label="gesture").fit, frame) == (
        "training data: missing column 'gesture'; columns are: id, t, a, b, label")
    bad = frame.copy().astype({"a": object})
    bad.loc[3, "a"] = "n/a"
    assert err(SequenceClassifier(series_id="id", time="t").fit, bad) == "training data: column 'a', row 4: non-numeric value 'n/a'"
    p = tmp_path / "w.csv"
    p.write_text("label,t0,t1,t2\nx,1,,3\ny,1,2,3\n")
    assert err(SequenceClassifier(layout="wide").fit, p) == f"{p}: column 't1', row 1: missing value inside the sequence (only trailing cells may be empty)"


def test_texts_after_a_space_and_a_comma_are_read_as_the_table_is(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("label, text\n" + "".join(f'{c}, "{w}, great {i}"\n' for i in range(3) for c, w in (("pos", "good"), ("neg", "bad"))))
    samples = read_texts(p, TextDataConfig())
    assert samples.labels == ["pos", "neg"] * 3  # were '"good' and '"bad': the second read split the quoted field
    assert samples.x[:2] == ["good, great 0", "bad, great 0"]
    p.write_text('text,label\nhello there,pos\nbad, "awful\nreally"\n')  # a quoted newline after a space: a pandas traceback
    assert read_texts(p, TextDataConfig(), labelled=False).x == ["hello there", "bad"]


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(st.sampled_from('ab ,"\n\'x'), min_size=1, max_size=8).filter(lambda t: t.strip() and t == t.lstrip()),
                      min_size=1, max_size=5))
def test_quoted_texts_after_a_space_keep_their_text(texts):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "t.csv"
        quoted = ['"' + t.replace('"', '""') + '"' for t in texts]
        p.write_text("label, text\n" + "".join(f"c{i % 2}, {q}\n" for i, q in enumerate(quoted)))
        samples = read_texts(p, TextDataConfig())
    assert samples.x == texts and samples.labels == [f"c{i % 2}" for i in range(len(texts))]


def test_empty_text(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('text,label\nhello there,a\n"   ",b\n')
    assert err(TextClassifier().fit, p) == f"{p}: column 'text', row 2: empty text"
    # No tokens (punctuation, emoji) is one out-of-vocabulary token, in training and prediction (it failed the whole table).
    frame = pd.DataFrame({"text": ["fine words", "?!", "more words", "\U0001f44d"], "label": ["a", "b", "a", "b"]})
    clf = TextClassifier(hidden_size=4, epochs=1, progress=False).fit(frame)
    assert clf.tokenizer_.encode("?!") == clf.tokenizer_.encode("\U0001f44d") == [1]
    assert len(clf.predict(["\U0001f600", "fine"])) == 2


def test_blank_lines_in_a_text_table_are_blank_texts_on_the_files_rows(tmp_path):
    """A blank line was skipped: every later row (predict's row key) was off by one from the file."""
    p = tmp_path / "t.csv"
    for body, row in (("hello\n\nworld\n", 2), ("hello\n   \nworld\n", 2), ("\nhello\n", 1), ("hello\r\n\r\nworld\r\n", 2), ("hello\rworld\r\r\rok\r", 3)):
        p.write_bytes(("text\n" + body).encode())
        assert err(read_texts, p, TextDataConfig(), labelled=False) == f"{p}: column 'text', row {row}: empty text"
    for text, row in (("text,label\nhello,a\n\nworld,b\n", 2), ("label,text\na,hello\nb,world\n\n \nc,x\n", 3), ('text,label\n"a\n\nb",x\n\nc,y\n', 2)):
        p.write_text(text)
        assert err(TextClassifier().fit, p) == f"{p}: column 'text', row {row}: empty text"
    p.write_text("text,label\nhello,a\n\nworld,b,c\n")  # rows as the file has them in every error
    assert err(read_texts, p, TextDataConfig()) == f"{p}: row 3 has 3 fields, the header has 2"
    p.write_text("text,label\nhello,a\nworld,b\n,\n")  # a row of empty cells is a row
    assert err(read_texts, p, TextDataConfig()) == f"{p}: column 'text', row 3: empty text"
    for end in ("\n\n\n", "\n  \n\t", "\r\n\r\n", "", "\r\r"):  # blank lines after the last row are no rows
        p.write_text("text\nhello\nworld" + end)
        samples = read_texts(p, TextDataConfig(), labelled=False)
        assert samples.x == ["hello", "world"] and samples.keys == samples.rows == [1, 2]
    p.write_text("text\n\n\n")
    assert err(read_texts, p, TextDataConfig(), labelled=False) == f"{p}: has a header but no data rows"


def test_sequence_longer_than_the_maximum(seq_clf):
    long = gestures(3, seed=9, lengths=(40, 41))
    first = long.loc[0, "id"]  # rows are shuffled: the series that starts at row 1
    assert err(seq_clf.predict, long) == f"input data: row 1: sequence {first!r} has 40 steps; the model takes at most {seq_clf.max_length_}"



@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3), bad=st.sampled_from([np.nan, np.inf, -np.inf, 1e39]), where=st.integers(0, 10**6))
def test_a_list_of_sequences_must_be_finite(seq_clf, lengths, bad, where):
    """NaN gave NaN probabilities and a label, inf finite probabilities."""
    xs = [np.full((n, 2), 5.0) for n in lengths]
    i = where % len(xs)
    t, c = divmod(where // len(xs) % xs[i].size, 2)
    xs[i][t, c] = bad
    what = "value beyond the float32 range" if np.isfinite(bad) else "non-finite value"
    want = f"input data: sample {i}: step {t}, channel {['a', 'b'][c]!r}: {what} {bad!r}"
    assert err(seq_clf.predict_proba, xs) == want and err(seq_clf.predict, xs) == want


def test_list_inputs_of_the_wrong_kind_and_saving_over_a_file(seq_clf, tmp_path):
    from coreml_lstm.errors import WriteError

    assert err(seq_clf.predict, [["x", "y"]]) == "input data: sample 0: expected numbers of shape (L, 2) with L >= 1"
    text = TextClassifier(hidden_size=4, num_layers=1, epochs=1).fit(pd.DataFrame({"text": ["good day", "bad day"] * 4, "label": ["p", "n"] * 4}))
    assert err(text.predict, ["fine", 123]) == "input data: text 1: expected a string, got int"  # was "empty text"
    assert err(text.predict, [" "]) == "input data: text 0: empty text"
    (tmp_path / "afile").write_text("")
    with pytest.raises(WriteError) as e:
        seq_clf.save(tmp_path / "afile")  # NotADirectoryError
    assert str(e.value) == f"{tmp_path / 'afile'}: exists and is not a directory; a checkpoint is a directory (give another path, or remove the file)"


# -- tokenizer -------------------------------------------------------------------------------

TRICKY = [
    "Don't STOP—rock-n-roll!!",
    "Café au lait, CAFE\u0301 (decomposed) & naïve coöperation",
    "İstanbul ΣΊΣΥΦΟΣ straße",
    "numbers 3.14 and ١٢٣ and ² and snake_case_words",
    "emoji 🙂👍🏽 tab\tnew\nline   spaces",
    "unseen zyzzyva qwxv words",
]


def test_word_split_rule():
    tok = Tokenizer(level="word")
    assert tok.split(TRICKY[0]) == ["don't", "stop", "rock", "n", "roll"]
    assert tok.split(TRICKY[1]) == ["café", "au", "lait", "café", "decomposed", "naïve", "coöperation"]  # NFC joins e + U+0301
    assert tok.split("numbers 3.14 ²") == ["numbers", "3", "14", "²"]
    assert tok.split("emoji 🙂 x") == ["emoji", "x"]
    assert Tokenizer(level="word", lowercase=False).split("Hi THERE") == ["Hi", "THERE"]
    assert Tokenizer(level="char").split("Ab c") == ["a", "b", " ", "c"]


@pytest.mark.parametrize("level", ["word", "char"])
def test_tokenizer_rebuilt_from_json_gives_identical_ids(tmp_path, level):
    tok = Tokenizer(level=level, max_vocab=25).fit(TRICKY[:5])
    path = tok.save(tmp_path / "vocab.json")
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["tokens"][:2] == [None, None] and stored["unicode_version"] == unicodedata.unidata_version
    back = Tokenizer.load(path)
    for text in TRICKY + ["", "ALL CAPS UNSEEN"]:
        assert back.encode(text) == tok.encode(text), text
    ids = tok.encode(TRICKY[5])
    assert 1 in ids and 0 not in ids  # out-of-vocabulary words map to 1; 0 is padding only
    assert len(tok.tokens) == 27


# -- export and executor verify --------------------------------------------------------------


def spec_of(path):
    from coreml_lstm._coremltools import coremltools

    return coremltools().models.MLModel(str(path), skip_model_load=True).get_spec()


def test_sequence_export_is_a_flexible_fp32_classifier(tmp_path, seq_clf):
    path = seq_clf.export(tmp_path / "g.mlpackage", precision="fp16", target="iOS17")
    spec = spec_of(path)
    (inp,) = spec.description.input
    array = inp.type.multiArrayType
    assert inp.name == "sequence" and array.dataType == array.FLOAT32
    assert [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges] == [(1, 1), (1, seq_clf.max_length_), (2, 2)]
    assert [o.name for o in spec.description.output] == ["classLabel", "classLabel_probs", "probabilities"]
    assert spec.description.predictedFeatureName == "classLabel" and spec.description.predictedProbabilitiesName == "classLabel_probs"
    assert spec.description.output[2].type.multiArrayType.dataType == array.FLOAT32
    meta = read_metadata(dict(spec.description.metadata.userDefined))
    assert meta["classes"] == ["down", "flat", "up"] and meta["channels"] == ["a", "b"]
    assert meta["max_length"] == seq_clf.max_length_ and meta["precision"] == "fp16"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_sequence_package_matches_torch_at_several_lengths(tmp_path, seq_clf, precision):
    path = seq_clf.export(tmp_path / "g.mlpackage", precision=precision, target="iOS17")
    report = verify_classifier(path, seq_clf)
    ran = report.ran
    lengths = {c.label.split("length ")[1].rstrip(")") for c in ran}
    assert len(lengths) >= 2
    assert {c.mode for c in ran} == {"fp32", "fp16"}
    assert {c.output.split(" ")[0] for c in ran} == {"probabilities", "classLabel", "classLabel_probs"}
    assert report.status == "passed", "\n".join(c.line() for c in report.failed)
    bar = 1e-4 if precision == "fp32" else 5e-2
    assert max(c.max_abs for c in ran if c.output.startswith("probabilities") and c.mode == "fp32") <= bar


def test_an_fp16_sequence_package_takes_raw_values_beyond_float16s_range(tmp_path):
    """Channels in the millions: the z-scoring stays fp32, the network computes in fp16."""
    import coreml_lstm.executor as ex

    table = gestures()
    table["a"] = table["a"] * 1e5 + 3e6
    clf = SequenceClassifier(series_id="id", time="t", **{**TINY, "epochs": 5}).fit(table)
    path = clf.export(tmp_path / "big.mlpackage", precision="fp16", target="iOS17")
    ops = ex.load(path).block.ops
    assert {np.dtype(o.outputs[0].dtype).name for o in ops if o.type == "lstm"} == {"float16"}
    report = verify_classifier(path, clf)
    assert report.status == "passed", "\n".join(c.line() for c in report.failed)
    assert any(c.mode == "fp16" and c.output == "probabilities" for c in report.ran)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_sequence_package_matches_torch(tmp_path, bidirectional):
    # nn.GRU converts to a while_loop (not MIL's gru op): the executor runs that loop.
    clf = SequenceClassifier(series_id="id", time="t", cell="gru", bidirectional=bidirectional, **{**TINY, "epochs": 5}).fit(gestures())
    path = clf.export(tmp_path / "gru.mlpackage")
    report = verify_classifier(path, clf, modes=("fp32",))
    assert report.status == "passed", "\n".join(c.line() for c in report.failed)
    assert len({c.label.split("length ")[1] for c in report.ran}) >= 2
    assert max(c.max_abs for c in report.ran if c.output.startswith("probabilities")) <= 1e-4


def test_a_wrong_weight_fails_verify(tmp_path, seq_clf):
    path = seq_clf.export(tmp_path / "g.mlpackage", precision="fp32", target="iOS17")
    blob = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(blob.read_bytes())
    offset = int.from_bytes(data[64 + 16 : 64 + 24], "little")  # the first record's data
    values = np.frombuffer(bytes(data[offset : offset + 64]), np.float32) + 0.5
    data[offset : offset + 64] = values.astype(np.float32).tobytes()
    blob.write_bytes(bytes(data))
    report = verify_classifier(path, seq_clf, modes=("fp32",))
    assert report.status == "failed"
    assert any(c.output.startswith("probabilities") for c in report.failed)


def test_a_series_id_named_as_a_predict_output_column_is_refused(tmp_path, monkeypatch):
    """predict's frame is the key, label, top1, top1_p, ...: an id column 'label' was overwritten
    by the predicted labels (the ids lost, exit 0)."""
    from coreml_lstm.classify import api
    from coreml_lstm.classify.commands import output_column_clash

    assert [n for n in ("label", "top1", "top2_p", "top10", "top", "top0", "labels", "top1_q", "Label", "row") if output_column_clash(n)] == [
        "label", "top1", "top2_p", "top10"]
    for name in ("label", "top1", "top2_p"):
        frame = gestures(12).rename(columns={"id": name, "label": "activity"})
        with pytest.raises(DataError) as e:
            SequenceClassifier(series_id=name, time="t", label="activity").fit(frame)
        clash = f"column {name!r} is named as a predict output column (label, top1, top1_p, top2, ...); rename the series id column"
        assert str(e.value) == f"series_id: {clash}" and e.value.cli == f"--series-id: {clash}"
    # A checkpoint or package trained before: predict refuses it in one line rather than overwrite the ids.
    monkeypatch.setattr(api, "output_column_clash", lambda name: None)
    frame = gestures(12).rename(columns={"id": "label", "label": "activity"})
    clf = SequenceClassifier(series_id="label", time="t", label="activity", **{**TINY, "epochs": 2}).fit(frame)
    with pytest.raises(ConfigError, match=r"^series id column 'label' is named as a predict output column .*; rename the series id column and retrain$"):
        clf.predict_frame(frame)
    path = clf.export(tmp_path / "old.mlpackage")
    with pytest.raises(ConfigError) as e:
        predict_classes(path, frame, backend="executor")
    assert str(e.value) == f"{path}: series id column 'label' is named as a predict output column (label, top1, top1_p, top2, ...); rename the series id column and retrain"


def test_predict_from_the_package_matches_the_python_model(tmp_path, seq_clf):
    path = seq_clf.export(tmp_path / "g.mlpackage", target="iOS16")
    table = gestures(12, seed=3)
    frame, backend = predict_classes(path, table, top_k=2, backend="executor")
    assert backend == "executor"
    assert list(frame.columns) == ["id", "label", "top1", "top1_p", "top2", "top2_p"]
    assert frame["label"].tolist() == seq_clf.predict(table)
    np.testing.assert_allclose(frame["top1_p"], seq_clf.predict_proba(table).max(-1), atol=1e-5)
    long = gestures(2, seed=4, lengths=(30, 31))
    first = long.loc[0, "id"]
    assert err(predict_classes, path, long, backend="executor") == f"input data: row 1: sequence {first!r} has 30 steps; the model takes at most {seq_clf.max_length_}"


def reviews(n: int = 64, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    good, bad = ["great", "lovely", "superb", "Excellent"], ["awful", "boring", "bad", "Terrible"]
    filler = ["the", "film", "was", "really", "plot", "and", "acting", "quite"]
    rows = []
    for i in range(n):
        label = ("pos", "neg")[i % 2]
        words = list(rng.choice(filler, int(rng.integers(2, 7)))) + [str(rng.choice(good if label == "pos" else bad))]
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + "!", "label": label})
    return pd.DataFrame(rows)


def test_text_classifier_export_verify_and_predict(tmp_path):
    clf = TextClassifier(embedding_dim=8, **{**TINY, "epochs": 40}).fit(reviews())
    assert clf.metrics_["accuracy"] >= 0.75
    path = clf.export(tmp_path / "r.mlpackage", precision="fp16", target="iOS16")
    vocab = tmp_path / "r.vocab.json"
    assert vocab.is_file() and Tokenizer.load(vocab).tokens == clf.tokenizer_.tokens
    spec = spec_of(path)
    (inp,) = spec.description.input
    assert inp.name == "tokens" and inp.type.multiArrayType.dataType == inp.type.multiArrayType.INT32  # never fp16 ids
    meta = read_metadata(dict(spec.description.metadata.userDefined))
    assert meta["tokenizer"]["level"] == "word" and meta["tokenizer"]["vocabulary_file"] == "r.vocab.json"
    assert meta["tokenizer"]["vocab_size"] == clf.tokenizer_.vocab_size
    report = verify_classifier(path, clf)
    assert report.status == "passed", "\n".join(c.line() for c in report.failed)
    assert len({c.label for c in report.ran if c.output.startswith("probabilities")}) >= 2
    texts = pd.DataFrame({"text": ["A superb film", "boring and awful plot", "zyzzyva!"]})
    frame, _ = predict_classes(path, texts, backend="executor")
    assert frame["label"].tolist() == clf.predict(texts["text"].tolist())
    assert frame["label"].tolist()[:2] == ["pos", "neg"]
    too_long = pd.DataFrame({"text": ["the film " * 20]})
    assert err(predict_classes, path, too_long, backend="executor") == f"input data: row 1: text has 40 tokens; the model takes at most {clf.max_length_}"


def edit_metadata(package, **entries):
    """Set (or, with None, delete) entries of a package's coreml-lstm metadata, as a hand edit would."""
    from coreml_lstm.executor._proto import model_pb2
    from coreml_lstm.metadata import METADATA_PREFIX

    path = Path(package) / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = model_pb2().Model()
    spec.ParseFromString(path.read_bytes())
    user = spec.description.metadata.userDefined
    for key, value in entries.items():
        if value is None:
            del user[METADATA_PREFIX + key]
        else:
            user[METADATA_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
    path.write_bytes(spec.SerializeToString())


@pytest.fixture(scope="module")
def text_package(tmp_path_factory):
    d = tmp_path_factory.mktemp("text-package")
    clf = TextClassifier(**{**TINY, "epochs": 2}).fit(reviews())
    clf.export(d / "r.mlpackage")
    return d, clf


def test_a_vocabulary_other_than_the_exported_one_is_refused(text_package, tmp_path):
    import shutil

    d, clf = text_package
    package = tmp_path / "r.mlpackage"
    shutil.copytree(d / "r.mlpackage", package)
    meta = read_metadata(dict(spec_of(package).description.metadata.userDefined))
    assert meta["tokenizer"]["vocabulary_sha256"] == clf.tokenizer_.digest()
    texts = pd.DataFrame({"text": ["A superb film"]})
    stale = Tokenizer(tokens=[None, None] + clf.tokenizer_.tokens[2:][::-1])  # the same size, other ids: was accepted
    stale.save(tmp_path / "r.vocab.json")
    with pytest.raises(ConfigError) as e:
        predict_classes(package, texts, backend="executor")
    assert str(e.value) == (f"{tmp_path / 'r.vocab.json'}: is not the vocabulary {package} was exported with (its tokens or rules "
                            "differ from the sha256 the package records); use the r.vocab.json written with the package")
    clf.tokenizer_.save(tmp_path / "r.vocab.json")
    assert len(predict_classes(package, texts, backend="executor")[0]) == 1
    # A package from before the digest: the size is still checked, and a same-size vocabulary still read.
    tokenizer = {k: v for k, v in meta["tokenizer"].items() if k != "vocabulary_sha256"}
    edit_metadata(package, tokenizer=tokenizer)
    stale.save(tmp_path / "r.vocab.json")
    assert len(predict_classes(package, texts, backend="executor")[0]) == 1
    Tokenizer(tokens=[None, None, "x"]).save(tmp_path / "r.vocab.json")
    with pytest.raises(ConfigError, match=f"holds 3 ids but the package was exported with {clf.tokenizer_.vocab_size}"):
        predict_classes(package, texts, backend="executor")


def test_the_vocabulary_digest_ignores_formatting_and_the_unicode_version(tmp_path):
    tok = Tokenizer().fit(["b a a", "c"])
    path = tok.save(tmp_path / "v.json")
    d = json.loads(path.read_text())
    d["unicode_version"] = "1.0"
    path.write_text(json.dumps(d))
    assert Tokenizer.load(path).digest() == tok.digest()
    assert Tokenizer(level="char").fit(["b a a", "c"]).digest() != Tokenizer(level="char", lowercase=False).fit(["b a a", "c"]).digest()


@pytest.mark.parametrize("edit, line", [
    ({"classes": ["pos", "neg"], "class_labels": ["pos", "neg"]},  # predict printed these labels and verify passed
     "metadata entry 'classes' names class 0 'pos' but the program's classifier labels it 'neg'"),
    ({"classes": ["neg", "pos", "x"]}, "metadata entry 'classes' lists 3 classes but the program's classifier has 2"),  # IndexError
    ({"classes": ["neg"]}, "metadata entry 'classes' is not a list of two or more class names"),
    ({"class_labels": ["pos", "neg"]}, "metadata entry 'class_labels' does not name the classes of entry 'classes' as text"),
    ({"label_type": "int"}, "metadata entry 'label_type' ('int') does not fit the classes ('neg', 'pos', ...)"),  # int() ValueError
    ({"label_type": "complex"}, "metadata entry 'label_type' ('complex') does not fit the classes ('neg', 'pos', ...)"),
    ({"data": {"text": "text", "label": "label", "extra": 1}}, "metadata entry 'data' has unknown field 'extra'"),  # dataclass TypeError
    ({"data": {"text": "text", "val_fraction": 7}}, "metadata entry 'data' is not valid (val_fraction: must be between 0 and 1 (exclusive), got 7)"),
    ({"max_length": "long"}, "metadata entry 'max_length' ('long') is not an integer >= 1"),
], ids=["swapped", "three-for-two", "one", "class-labels", "label-type", "unknown-type", "data-key", "data-value", "max-length"])
def test_edited_package_metadata_is_one_line_naming_the_entry(text_package, tmp_path, edit, line):
    import shutil

    from coreml_lstm.errors import PackageError

    d, clf = text_package
    package = tmp_path / "r.mlpackage"
    shutil.copytree(d / "r.mlpackage", package)
    shutil.copy(d / "r.vocab.json", tmp_path / "r.vocab.json")
    edit_metadata(package, **edit)
    want = f"{package}: {line}; re-export the package from its checkpoint"
    for call in (lambda: predict_classes(package, pd.DataFrame({"text": ["A superb film"]}), backend="executor"),
                 lambda: verify_classifier(package, clf, modes=("fp32",))):
        with pytest.raises(PackageError) as e:
            call()
        assert str(e.value) == want


def test_the_program_exposes_its_classifier_labels(text_package, seq_clf, tmp_path):
    from coreml_lstm import executor

    d, clf = text_package
    assert executor.load(d / "r.mlpackage").class_labels() == ["neg", "pos"]
    assert executor.load(seq_clf.export(tmp_path / "g.mlpackage")).class_labels() == ["down", "flat", "up"]


def test_a_conv_branch_with_a_one_value_batch_is_one_line():
    frame = pd.DataFrame({"label": ["a", "b"] * 4, "t0": [0.0, 1.0] * 4})  # wide, every sequence of length 1
    with pytest.raises(ConfigError) as e:  # ValueError: Expected more than 1 value per channel when training
        SequenceClassifier(layout="wide", conv_channels=[4], batch_size=1, epochs=1).fit(frame)
    assert str(e.value) == ("batch_size: a training batch of one sample of length 1 gives the conv branch's BatchNorm one value per "
                            "channel; use a batch size of 2 or more (batch_size is 1) or no conv branch")
    assert SequenceClassifier(layout="wide", conv_channels=[4], batch_size=2, epochs=1, hidden_size=4).fit(frame).model_ is not None


@pytest.mark.parametrize("edit, line", [
    (lambda d: d.pop("level"), "lacks entry 'level'"),  # KeyError
    (lambda d: d.update(max_vocab="many"), "entry 'max_vocab' is 'many', not an int"),  # ValueError
    (lambda d: d.update(lowercase=None), "entry 'lowercase' is None, not a bool"),
    (lambda d: d["tokens"].append(["x"]), "'tokens' entry 4 is ['x'], not a string"),  # TypeError: unhashable
    (lambda d: d.update(level="bpe"), "level: 'bpe' is not one of word, char"),
], ids=["no-level", "max-vocab", "lowercase", "token", "level"])
def test_a_damaged_vocabulary_is_one_line(tmp_path, edit, line):
    path = Tokenizer().fit(["a b"]).save(tmp_path / "v.json")
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))
    assert err(Tokenizer.load, path) == f"{path}: {line}"
    path.write_text("[1, 2]")  # AttributeError: 'list' object has no attribute 'get'
    assert err(Tokenizer.load, path) == f"{path}: not a coreml-lstm tokenizer (format 'list', expected 'coreml-lstm-tokenizer/1')"


def test_a_damaged_checkpoint_is_one_config_error(seq_clf, tmp_path):
    import shutil

    seq_clf.save(tmp_path / "ok")

    def damaged(edit):
        d = tmp_path / "bad"
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(tmp_path / "ok", d)
        config = json.loads((d / "config.json").read_text())
        edit(config)
        (d / "config.json").write_text(json.dumps(config))
        with pytest.raises(ConfigError) as e:
            load_classifier(d)
        assert "\n" not in str(e.value)
        return str(e.value).replace(str(d), "CKPT")

    assert damaged(lambda c: c.pop("data")) == "CKPT/config.json: lacks entry 'data'; the checkpoint is damaged (train again or restore it)"  # KeyError
    assert damaged(lambda c: c.update(classes=["down", "up"])) == (  # torch: size mismatch
        "CKPT/model.safetensors: does not fit config.json (size mismatch for head.weight: copying a param with shape torch.Size([3, 24]) "
        "from checkpoint, the shape in current model is torch.Size([2, 24])); the checkpoint is damaged")
    assert damaged(lambda c: c.update(label_type="int")) == "CKPT/config.json: entry 'classes' is damaged (invalid literal for int() with base 10: 'down')"
    assert damaged(lambda c: c.update(task="regress")) == "CKPT/config.json: entry 'task' is 'regress', not one of classify, text-classify"
    assert damaged(lambda c: c["normalizer"].update(mean=[0.0])) == "CKPT/config.json: entry 'normalizer' is damaged (2 channels need 2 means and deviations)"
    assert damaged(lambda c: c["model"].update(hidden_size="x")).startswith("CKPT/config.json: entry 'options' is damaged (")


def test_macro_f1_leaves_out_a_class_without_samples_or_predictions_and_says_so():
    m = classification_metrics(np.array([0, 0, 1]), np.array([0, 1, 1]), ["a", "b", "c"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)  # 'c': no samples, never predicted: left out, as the docstring says
    assert m["no_samples"] == ["c"] and m["warnings"] == ["no validation samples of class 'c'; macro F1 leaves out 'c' (never predicted either)"]
    m = classification_metrics(np.array([0, 0]), np.array([0, 2]), ["a", "b", "c"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)  # 'c' predicted without samples counts 0; 'b' left out
    assert m["warnings"] == ["no validation samples of classes 'b', 'c'; macro F1 leaves out 'b' (never predicted either)"]
    assert classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a", "b"])["warnings"] == []


def test_wide_predictions_read_the_training_step_columns_by_name(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"label": ["a", "b"] * 8, **{f"t{i}": rng.normal(size=16) + np.arange(16) % 2 * i for i in range(4)}})
    clf = SequenceClassifier(layout="wide", hidden_size=4, epochs=2).fit(frame)
    assert clf.steps_ == ["t0", "t1", "t2", "t3"] and load_classifier(clf.save(tmp_path / "ckpt")).steps_ == clf.steps_
    package = clf.export(tmp_path / "w.mlpackage")
    plain = frame.drop(columns="label")
    want, _ = predict_classes(package, plain, backend="executor")
    swapped = plain[["t1", "t0", "t3", "t2"]]  # was read by position: t1 as the first step
    with_id = plain.assign(sample_id=range(100, 116))[["sample_id", "t0", "t1", "t2", "t3"]]  # was read as a step
    for table in (swapped, with_id):
        got, _ = predict_classes(package, table, backend="executor")
        pd.testing.assert_frame_equal(got, want)
        np.testing.assert_allclose(clf.predict_proba(table), clf.predict_proba(plain))
    assert err(predict_classes, package, plain.drop(columns="t2"), backend="executor") == "input data: missing column 't2'; columns are: t0, t1, t3"
    edit_metadata(package, steps=None)  # a package from before: its columns by position, as they were
    got, _ = predict_classes(package, swapped, backend="executor")
    assert not got.equals(want)


# -- the executor's classify kernel ----------------------------------------------------------


def test_classify_kernel_picks_the_first_maximum_and_builds_the_dictionary():
    from coreml_lstm.executor.ops.reduction import Classify

    kernel = Classify.__new__(Classify)
    label, probs = kernel.compute(probabilities=np.array([[0.2, 0.4, 0.4]], np.float32), classes=["a", "b", "c"])
    assert str(label) == "b"
    assert probs == pytest.approx({"a": 0.2, "b": 0.4, "c": 0.4})
    label, probs = kernel.compute(probabilities=np.array([0.9, 0.1]), classes=[np.array(7, np.int64), np.array(3, np.int64)])
    assert int(label) == 7 and set(probs) == {7, 3}
    with pytest.raises(ValueError, match="3 classes for 2 probabilities"):
        kernel.compute(probabilities=np.array([0.5, 0.5]), classes=["a", "b", "c"])


# -- the functions the CLI calls -------------------------------------------------------------


def test_cli_functions_train_export_verify_and_dispatch(tmp_path):
    from coreml_lstm.classify import (evaluate_package, export_classifier_checkpoint, is_classifier_checkpoint,
                                      is_classifier_package, train_classifier, verify_classifier_package)

    frame = gestures()
    clf = train_classifier(frame, task="classify", out=tmp_path / "run", progress=False, series_id="id", time="t", **{**TINY, "epochs": 10})
    assert is_classifier_checkpoint(tmp_path / "run") and not is_classifier_checkpoint(tmp_path)
    path = export_classifier_checkpoint(tmp_path / "run", tmp_path / "g.mlpackage", target="iOS17")
    assert is_classifier_package(path)
    report = verify_classifier_package(path, tmp_path / "run", table=gestures(6, seed=7))
    assert report.status == "passed" and report.samples >= 6
    metrics = evaluate_package(path, frame, backend="executor")
    assert metrics["accuracy"] == pytest.approx(clf.evaluate(frame)["accuracy"])
    with pytest.raises(ConfigError, match="task: 'regress' is not one of classify, text-classify"):
        train_classifier(frame, task="regress")
    with pytest.raises(ConfigError, match="schedule: 'step' is not one of none, cosine"):
        SequenceClassifier(schedule="step")
    with pytest.raises(ConfigError, match="unknown option 'windw'"):
        SequenceClassifier(windw=3)


@pytest.mark.parametrize("kind", ["sequence", "text"])
def test_a_classifier_without_validation_samples_verifies_on_random_ones(tmp_path, kind):
    """Too few rows for a validation part: verify draws sequences from the training statistics
    (or token ids from the vocabulary) at the shortest, the longest and a middle length."""
    if kind == "sequence":
        clf = SequenceClassifier(layout="wide", **{**TINY, "epochs": 1}).fit(pd.DataFrame({"label": [1, 3, -1, 2], "t0": [0.0, 1, 2, 3], "t1": [5.0, 1, 0, 2]}))
    else:
        clf = TextClassifier(**{**TINY, "epochs": 1}).fit(pd.DataFrame({"text": ["hello world", "foo bar baz"], "label": ["a", "b"]}))
    assert not clf.validation_samples_
    path = clf.export(tmp_path / "c.mlpackage")
    report = verify_classifier(path, clf)
    assert report.status == "passed", [c.line() for c in report.failed]
    assert {c.size for c in report.ran} >= {"random, length 1"} and len({c.size for c in report.ran}) >= 2
