"""Swift next to an export: a typed wrapper over MLModel and an XCTest replaying golden vectors.

The wrapper is generated from what the package itself declares (inputs, outputs, states and the
toolkit's metadata), so the names it uses are exactly the package's. What the package records
in its metadata (column order, window, horizon, mixture size) the wrapper reads from the model
at run time rather than repeating it as literals; the normalisation is inside the graph, so an
app passes raw values. MLMultiArrays are filled and read through their data pointers with the
strides respected (``withUnsafeMutableBufferPointer``, iOS 15.4 / macOS 12.3), never one
NSNumber at a time.

Generated files, for a package ``Name.mlpackage`` (type name ``Name``):
    Name.swift         the wrapper (``Name``; ``Name.Stream`` for streaming packages)
    NameTests.swift    an XCTest loading the package and ``Name.golden.json`` from the test bundle
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError
from .fsutil import atomic_path, write_text

def type_name(package: str | Path) -> str:
    """A Swift type name from the package's file name: ``sunspots-fp16.mlpackage`` -> ``SunspotsFp16``."""
    stem = Path(package).name.removesuffix(".mlpackage")
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", stem) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    return name if name[0].isalpha() else "Model" + name


def identifier(feature: str) -> str:
    """A Swift identifier for a feature name: ``h_in`` -> ``hIn``."""
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", feature) if p]
    name = parts[0][:1].lower() + parts[0][1:] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return name if name[0].isalpha() else "f" + name


def _swift_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def generate(package: str | Path, out_dir: str | Path, *, golden: str | None = None, adapter=None) -> list[Path]:
    """Write the wrapper and, with ``golden`` (a golden file name), the XCTest; return the paths.

    ``adapter`` (an :class:`~coreml_lstm.adapter.Adapter` or its class) writes the wrapper; by
    default the kind the package's metadata records (any other package: a plain module's wrapper).
    """
    from . import executor
    from .adapter import for_package
    from .metadata import read_metadata

    program = executor.load(package)
    meta = read_metadata(program.metadata.get("user", {}), package)
    if any(t.dtype.kind not in "fiu" for t in program.inputs):
        raise ConfigError(f"{package}: Swift generation takes packages whose inputs are arrays")
    write = (adapter or for_package(package)).swift
    name = type_name(package)
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.swift"]
    write_text(paths[0], write(name, program, meta))
    if golden:
        paths.append(out_dir / f"{name}Tests.swift")
        write_text(paths[1], xctest(name, program, meta, golden, Path(package).name.removesuffix(".mlpackage")))
    return paths


def write(package: str | Path, out_dir: str | Path, adapter=None, *, module=None) -> list[Path]:
    """The wrapper; with the model (its ``adapter``, or a torch ``module`` the package came from)
    also golden vectors from PyTorch, replayed through the executor before they are written, and
    the XCTest that replays them on the device.

    Returns:
        The paths written (wrapper, test, golden file).
    """
    from .errors import ParityError
    from .golden import check_golden, golden, write_golden

    if adapter is None and module is not None:
        from .user_model import ModuleAdapter

        adapter = ModuleAdapter.for_package(module, package)
    if adapter is None:
        return generate(package, out_dir)
    from . import executor
    from .verify import check_features

    check_features(adapter, executor.load(package), package)  # a checkpoint of another model: say so, naming the package
    vectors = golden(adapter, package)
    report = check_golden(package, vectors)
    if report.status != "passed":
        failed = "; ".join(c.line() for c in report.failed)
        raise ParityError(f"the executor does not reproduce the golden vectors of {package}: {failed}")
    name = f"{type_name(package)}.golden.json"
    out_dir = Path(out_dir)

    def write_all(directory: Path) -> list[Path]:
        # Each file is written atomically; the golden file first, so the test never names a missing one.
        golden_path = write_golden(directory / name, vectors)
        return [*generate(package, directory, golden=name, adapter=adapter), golden_path]

    if out_dir.exists():
        return write_all(out_dir)
    with atomic_path(out_dir) as tmp:  # a new directory appears whole, with every file, or not at all
        tmp.mkdir()
        written = write_all(tmp)
    return [out_dir / p.name for p in written]


# -- the wrapper -------------------------------------------------------------------------------

_HEADER = """\
// Generated by coreml-lstm {version} from {package}. Regenerate with `coreml-lstm swift`; do not edit.
// Needs iOS 15.4 / macOS 12.3 (MLMultiArray buffer access){states_note}.
"""

_RUNTIME = """
/// Errors of the generated wrapper; each names what was wrong.
public enum {name}Error: Error, CustomStringConvertible {{
    case metadata(String)
    case shape(String)
    case output(String)

    public var description: String {{
        switch self {{
        case .metadata(let m), .shape(let m), .output(let m): return m
        }}
    }}
}}

//--extension--
/// A row-major array of Float with its shape, as read from an MLMultiArray.
public struct Tensor {{
    public let shape: [Int]
    public let values: [Float]

    public init(shape: [Int], values: [Float]) {{
        self.shape = shape
        self.values = values
    }}

    /// The element at a full index, row-major.
    public subscript(_ index: Int...) -> Float {{
        var offset = 0
        for (i, n) in zip(index, shape) {{
            offset = offset * n + i
        }}
        return values[offset]
    }}
}}

/// Fills and reads MLMultiArrays through their data pointers, respecting their strides.
public enum MultiArray {{
    /// A new Float32 array of `shape` holding row-major `values`.
    public static func make(_ values: [Float], shape: [Int]) throws -> MLMultiArray {{
        let count = shape.reduce(1, *)
        guard values.count == count else {{
            throw {name}Error.shape("expected \\(count) values for shape \\(shape), got \\(values.count)")
        }}
        let array = try MLMultiArray(shape: shape.map {{ NSNumber(value: $0) }}, dataType: .float32)
        array.withUnsafeMutableBufferPointer(ofType: Float.self) {{ buffer, strides in
            offsets(shape: shape, strides: strides) {{ flat, offset in buffer[offset] = values[flat] }}
        }}
        return array
    }}

    /// Calls body(row-major position, memory offset) for every element of an array of `shape`
    /// laid out with `strides` (in elements).
    public static func offsets(shape: [Int], strides: [Int], _ body: (Int, Int) -> Void) {{
        let count = shape.reduce(1, *)
        var index = [Int](repeating: 0, count: shape.count)
        for flat in 0..<count {{
            var offset = 0
            for d in 0..<shape.count {{
                offset += index[d] * strides[d]
            }}
            body(flat, offset)
            var d = shape.count - 1
            while d >= 0 {{
                index[d] += 1
                if index[d] < shape[d] {{ break }}
                index[d] = 0
                d -= 1
            }}
        }}
    }}

    /// A new Int32 array of `shape` holding row-major `values` (token ids: never through Float).
    public static func make(int32 values: [Int32], shape: [Int]) throws -> MLMultiArray {{
        let count = shape.reduce(1, *)
        guard values.count == count else {{
            throw {name}Error.shape("expected \\(count) ids for shape \\(shape), got \\(values.count)")
        }}
        let array = try MLMultiArray(shape: shape.map {{ NSNumber(value: $0) }}, dataType: .int32)
        array.withUnsafeMutableBufferPointer(ofType: Int32.self) {{ buffer, strides in
            offsets(shape: shape, strides: strides) {{ flat, offset in buffer[offset] = values[flat] }}
        }}
        return array
    }}

    /// The values of a Float32 or Float64 array, row-major, whatever its strides.
    public static func read(_ array: MLMultiArray) throws -> Tensor {{
        let shape = array.shape.map {{ $0.intValue }}
        let strides = array.strides.map {{ $0.intValue }}
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        switch array.dataType {{
        case .float32:
            array.withUnsafeBufferPointer(ofType: Float.self) {{ buffer in
                offsets(shape: shape, strides: strides) {{ flat, offset in values[flat] = buffer[offset] }}
            }}
        case .double:
            array.withUnsafeBufferPointer(ofType: Double.self) {{ buffer in
                offsets(shape: shape, strides: strides) {{ flat, offset in values[flat] = Float(buffer[offset]) }}
            }}
        case .int32:
            array.withUnsafeBufferPointer(ofType: Int32.self) {{ buffer in
                offsets(shape: shape, strides: strides) {{ flat, offset in values[flat] = Float(buffer[offset]) }}
            }}
        default:
            throw {name}Error.output("unexpected MLMultiArray data type \\(array.dataType.rawValue)")
        }}
        return Tensor(shape: shape, values: values)
    }}
}}
"""

_MIXTURE = """
/// One Gaussian mixture: K weights, means and standard deviations in original units.
public struct Mixture {
    public let weights: [Float]
    public let means: [Float]
    public let scales: [Float]

    public init(weights: [Float], means: [Float], scales: [Float]) {
        self.weights = weights
        self.means = means
        self.scales = scales
    }

    /// The mixture mean: sum of w_k * mu_k.
    public var mean: Double {
        zip(weights, means).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// The mixture variance: sum of w_k * (s_k^2 + mu_k^2) - mean^2.
    public var variance: Double {
        let m = mean
        var second = 0.0
        for k in 0..<weights.count {
            second += Double(weights[k]) * (Double(scales[k]) * Double(scales[k]) + Double(means[k]) * Double(means[k]))
        }
        return max(second - m * m, 0)
    }

    /// P(Y <= y).
    public func cdf(_ y: Double) -> Double {
        var total = 0.0
        for k in 0..<weights.count {
            total += Double(weights[k]) * 0.5 * (1 + erf((y - Double(means[k])) / (Double(scales[k]) * 2.0.squareRoot())))
        }
        return total
    }

    /// The p-quantile (0 < p < 1), by bisection on the CDF.
    public func quantile(_ p: Double) -> Double {
        let spread = 12 * (scales.max().map(Double.init) ?? 1)
        var lo = Double(means.min() ?? 0) - spread
        var hi = Double(means.max() ?? 0) + spread
        for _ in 0..<100 {
            let mid = 0.5 * (lo + hi)
            if cdf(mid) < p { lo = mid } else { hi = mid }
        }
        return 0.5 * (lo + hi)
    }

    /// The central interval holding `coverage` of the probability, e.g. 0.9 -> (q05, q95).
    public func interval(_ coverage: Double) -> (lower: Double, upper: Double) {
        ((quantile((1 - coverage) / 2)), quantile((1 + coverage) / 2))
    }

    /// One draw: pick a component by weight, then a normal draw (Box-Muller).
    public func sample<G: RandomNumberGenerator>(using generator: inout G) -> Double {
        var u = Double.random(in: 0..<1, using: &generator)
        var k = 0
        while k < weights.count - 1 && u >= Double(weights[k]) {
            u -= Double(weights[k])
            k += 1
        }
        let a = Double.random(in: Double.ulpOfOne..<1, using: &generator)
        let b = Double.random(in: 0..<1, using: &generator)
        let z = (-2 * log(a)).squareRoot() * cos(2 * Double.pi * b)
        return Double(means[k]) + Double(scales[k]) * z
    }
}
"""


def _decl_names(program) -> list[tuple[str, str]]:
    """(role, feature name) of every input, output and state the package declares."""
    return ([("input", t.name) for t in program.inputs] + [("output", t.name) for t in program.outputs]
            + [("state", s.name) for s in program.states])


def _feature_enum(name: str, program) -> str:
    lines = ["", f"/// The feature names {name}.mlpackage declares.", f"public enum {name}Feature {{"]
    for role, feature in _decl_names(program):
        lines.append(f"    /// {role}")
        lines.append(f"    public static let {identifier(feature)} = {_swift_string(feature)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _output_struct(name: str, program, mixture: bool, *, carried: bool = False, doc: str = "The outputs of one call, in original units.") -> str:
    """The ``Output`` struct: one Tensor per output (``carried``: also the ``*_out`` state outputs)."""
    outs = [t for t in program.outputs if carried or not t.name.endswith("_out")]
    lines = ["", f"/// {doc}", "public struct Output {"]
    for t in outs:
        doc = (t.description or t.name).replace("\n", " ")
        lines.append(f"    /// {doc}")
        lines.append(f"    public let {identifier(t.name)}: Tensor")
    if mixture:
        lines += [
            "",
            "    /// The mixture for one horizon step and target (of window `index` of a batch).",
            "    public func mixture(step: Int, target: Int, index: Int = 0) -> Mixture {",
            "        let k = weights.shape[3]",
            "        let start = ((index * weights.shape[1] + step) * weights.shape[2] + target) * k",
            "        return Mixture(weights: Array(weights.values[start..<start + k]),",
            "                       means: Array(means.values[start..<start + k]),",
            "                       scales: Array(scales.values[start..<start + k]))",
            "    }",
        ]
    lines.append("")
    lines.append("    init(_ result: MLFeatureProvider) throws {")
    for t in outs:
        lines.append(f"        {identifier(t.name)} = try Output.tensor(result, {name}Feature.{identifier(t.name)})")
    lines.append("    }")
    lines += [
        "",
        "    static func tensor(_ result: MLFeatureProvider, _ feature: String) throws -> Tensor {",
        "        guard let array = result.featureValue(for: feature)?.multiArrayValue else {",
        f"            throw {name}Error.output(\"the model returned no array named \\(feature)\")",
        "        }",
        "        return try MultiArray.read(array)",
        "    }",
        "}",
    ]
    return "\n".join("    " + l if l else "" for l in lines) + "\n"


def _load_model(name: str, metadata: bool = True) -> list[str]:
    """Init lines shared by every wrapper: load or compile the model (and read its toolkit metadata)."""
    load = [
        "        let compiled = url.pathExtension == \"mlmodelc\" ? url : try MLModel.compileModel(at: url)",
        "        let loaded = try MLModel(contentsOf: compiled, configuration: configuration)",
        "        model = loaded",
    ]
    if not metadata:
        return load
    return load + [
        "        let metadata = loaded.modelDescription.metadata[MLModelMetadataKey.creatorDefinedKey] as? [String: String] ?? [:]",
        "        func entry<T: Decodable>(_ key: String, as type: T.Type) throws -> T {",
        "            guard let text = metadata[\"coreml_lstm.\" + key] else {",
        f"                throw {name}Error.metadata(\"the package has no metadata entry coreml_lstm.\\(key)\")",
        "            }",
        "            return try JSONDecoder().decode(T.self, from: Data(text.utf8))",
        "        }",
    ]


def _assemble(name: str, program, body: list[str], extra_helpers: str = "", states_note: str = "") -> str:
    """Header, imports, the error enum, the feature-name enum, the wrapper class (``body``) and
    its helper types, nested in an extension so two generated wrappers can share a target."""
    from . import __version__

    errors, helpers = _RUNTIME.format(name=name).split("//--extension--\n")
    nested = "\n".join("    " + line if line else "" for line in (helpers + extra_helpers).strip("\n").splitlines())
    return "".join([
        _HEADER.format(version=__version__, package=f"{name}.mlpackage", states_note=states_note),
        "import CoreML\nimport Foundation\n", errors, _feature_enum(name, program),
        "\n".join(body) + "\n",
        f"\n// MARK: - Helpers\n\nextension {name} {{\n{nested}\n}}\n",
    ])


def _max_batch(spec) -> int | None:
    """The most windows a window package takes in one call, when its first axis is a range."""
    if spec.shape_range and spec.shape_range[0][1] > 1:
        return int(spec.shape_range[0][1])
    return None


def wrapper(name: str, program, meta: dict) -> str:
    streaming = meta.get("streaming")
    mixture = meta.get("head") == "mixture"
    states = [s.name for s in program.states]
    inp = program.inputs[0]
    body = [
        "",
        f"/// {program.metadata.get('short_description') or name}",
        f"public final class {name} {{",
        "    public let model: MLModel",
        "    /// Input columns in the order the model reads them (from the package's metadata).",
        "    public let inputColumns: [String]",
        "    /// Target columns, in the order of the outputs' last axis.",
        "    public let targetColumns: [String]",
        "    /// Rows per prediction window.",
        "    public let window: Int",
        "    /// Steps predicted at once.",
        "    public let horizon: Int",
    ]
    if streaming:
        body += ["    /// The longest chunk of rows one call takes.", "    public let maxChunk: Int"]
    batch = _max_batch(inp) if not streaming else None
    if batch:
        body += ["    /// The most windows one call takes (the package's first axis).", f"    public let maxBatch = {batch}"]
    body += [
        "",
        "    /// Loads a compiled model (.mlmodelc) or compiles a package (.mlpackage) first.",
        "    public init(contentsOf url: URL, configuration: MLModelConfiguration = MLModelConfiguration()) throws {",
        *_load_model(name),
        "        inputColumns = try entry(\"input_columns\", as: [String].self)",
        "        targetColumns = try entry(\"target_columns\", as: [String].self)",
        "        window = try entry(\"window\", as: Int.self)",
        "        horizon = try entry(\"horizon\", as: Int.self)",
    ]
    if streaming:
        body.append("        maxChunk = try entry(\"max_chunk\", as: Int.self)")
    body.append("    }")
    body.append(_output_struct(name, program, mixture).rstrip("\n"))
    rows_doc = "rows[i][j] is column inputColumns[j] at step i, raw units"
    if not streaming:
        body += [
            "",
            f"    /// One forecast from the last `window` rows, oldest first ({rows_doc}).",
            "    public func predict(window rows: [[Float]]) throws -> Output {",
            "        guard rows.count == window, rows.allSatisfy({ $0.count == inputColumns.count }) else {",
            f"            throw {name}Error.shape(\"expected \\(window) rows of \\(inputColumns.count) values (\\(inputColumns)), got \\(rows.count) rows\")",
            "        }",
            "        let array = try MultiArray.make(rows.flatMap { $0 }, shape: [1, window, inputColumns.count])",
            f"        let features = try MLDictionaryFeatureProvider(dictionary: [{name}Feature.{identifier(inp.name)}: MLFeatureValue(multiArray: array)])",
            "        return try Output(model.prediction(from: features))",
            "    }",
        ]
    if batch:
        body += [
            "",
            "    /// Forecasts from several windows in one call (1 to maxBatch), each as for `predict(window:)`;",
            "    /// the output's first axis is the window.",
            "    public func predict(windows: [[[Float]]]) throws -> Output {",
            "        guard (1...maxBatch).contains(windows.count) else {",
            f"            throw {name}Error.shape(\"expected 1 to \\(maxBatch) windows, got \\(windows.count)\")",
            "        }",
            "        for rows in windows where rows.count != window || !rows.allSatisfy({ $0.count == inputColumns.count }) {",
            f"            throw {name}Error.shape(\"expected \\(window) rows of \\(inputColumns.count) values (\\(inputColumns)), got \\(rows.count) rows\")",
            "        }",
            "        let array = try MultiArray.make(windows.flatMap { $0.flatMap { $0 } }, shape: [windows.count, window, inputColumns.count])",
            f"        let features = try MLDictionaryFeatureProvider(dictionary: [{name}Feature.{identifier(inp.name)}: MLFeatureValue(multiArray: array)])",
            "        return try Output(model.prediction(from: features))",
            "    }",
        ]
    if streaming:
        body += _stream(name, program, states)
    body.append("}")
    return _assemble(name, program, body, _MIXTURE if mixture else "",
                     "; the stream needs iOS 18 / macOS 15 (MLState)" if states else "")


def _stream(name: str, program, states: list[str]) -> list[str]:
    inputs = [t for t in program.inputs if t.name != "x"]
    chunk_check = [
        "            guard !rows.isEmpty, rows.count <= owner.maxChunk, rows.allSatisfy({ $0.count == owner.inputColumns.count }) else {",
        f"                throw {name}Error.shape(\"expected 1 to \\(owner.maxChunk) rows of \\(owner.inputColumns.count) values, got \\(rows.count) rows\")",
        "            }",
        "            let x = try MultiArray.make(rows.flatMap { $0 }, shape: [1, rows.count, owner.inputColumns.count])",
    ]
    if states:
        return [
            "",
            "    /// Rows fed chunk by chunk; the recurrent state lives in an MLState between calls.",
            "    @available(iOS 18.0, macOS 15.0, *)",
            "    public final class Stream {",
            f"        let owner: {name}",
            "        var state: MLState",
            "",
            f"        public init(_ owner: {name}) {{",
            "            self.owner = owner",
            "            state = owner.model.makeState()",
            "        }",
            "",
            "        /// Forget everything fed so far: the next chunk starts from a zero state.",
            "        public func reset() {",
            "            state = owner.model.makeState()",
            "        }",
            "",
            "        /// Feed the next rows (oldest first, raw units); the outputs forecast from the last of them.",
            "        public func predict(rows: [[Float]]) throws -> Output {",
            *chunk_check,
            f"            let features = try MLDictionaryFeatureProvider(dictionary: [{name}Feature.x: MLFeatureValue(multiArray: x)])",
            "            return try Output(owner.model.prediction(from: features, using: state))",
            "        }",
            "    }",
            "",
            "    @available(iOS 18.0, macOS 15.0, *)",
            "    public func makeStream() -> Stream {",
            "        Stream(self)",
            "    }",
        ]
    lines = [
        "",
        "    /// Rows fed chunk by chunk; the recurrent state is carried from one call's outputs to the next call's inputs.",
        "    public final class Stream {",
        f"        let owner: {name}",
    ]
    for t in inputs:
        lines.append(f"        var {identifier(t.name)}: MLMultiArray")
    lines += ["", f"        public init(_ owner: {name}) throws {{", "            self.owner = owner"]
    for t in inputs:
        lines.append(f"            {identifier(t.name)} = try MultiArray.make([Float](repeating: 0, count: {_count(t.shape)}), shape: {list(t.shape)})")
    lines += ["        }", "", "        /// Forget everything fed so far: the next chunk starts from a zero state.", "        public func reset() throws {"]
    for t in inputs:
        lines.append(f"            {identifier(t.name)} = try MultiArray.make([Float](repeating: 0, count: {_count(t.shape)}), shape: {list(t.shape)})")
    lines += ["        }", "", "        /// Feed the next rows (oldest first, raw units); the outputs forecast from the last of them.",
              "        public func predict(rows: [[Float]]) throws -> Output {", *chunk_check,
              "            let features = try MLDictionaryFeatureProvider(dictionary: [",
              f"                {name}Feature.x: MLFeatureValue(multiArray: x),"]
    for t in inputs:
        lines.append(f"                {name}Feature.{identifier(t.name)}: MLFeatureValue(multiArray: {identifier(t.name)}),")
    lines += ["            ])", "            let result = try owner.model.prediction(from: features)"]
    for t in inputs:
        out = t.name[: -len("_in")] + "_out"
        lines += [
            f"            guard let {identifier(out)} = result.featureValue(for: {name}Feature.{identifier(out)})?.multiArrayValue else {{",
            f"                throw {name}Error.output(\"the model returned no {out}\")",
            "            }",
            f"            {identifier(t.name)} = {identifier(out)}",
        ]
    lines += ["            return try Output(result)", "        }", "    }", "", "    public func makeStream() throws -> Stream {", "        try Stream(self)", "    }"]
    return lines


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


# -- the XCTest -------------------------------------------------------------------------------


def xctest(name: str, program, meta: dict, golden: str, resource_name: str) -> str:
    from . import __version__

    states = bool(program.states)
    resource = golden.removesuffix(".json")
    available = "    @available(iOS 18.0, macOS 15.0, *)\n" if states else ""
    vocabulary = (meta.get("tokenizer") or {}).get("vocabulary_file")
    if vocabulary:
        load = (f"        let vocabulary = try XCTUnwrap(bundle.url(forResource: {_swift_string(vocabulary.removesuffix('.json'))}, withExtension: \"json\"))\n"
                f"        let wrapper = try {name}(contentsOf: url, vocabulary: vocabulary)")
        extra_test = """

    func testTokenizerFollowsTheStoredRules() throws {
        let (wrapper, golden) = try load()
        for probe in golden.tokenizer ?? [] {
            XCTAssertEqual(wrapper.tokenizer.encode(probe.text), probe.ids, "text: \\(probe.text)")
        }
    }"""
    else:
        load = f"        let wrapper = try {name}(contentsOf: url)"
        extra_test = ""
    return f"""\
// Generated by coreml-lstm {__version__}. Add {name}.swift, {resource_name}.mlpackage and {golden}{" and " + vocabulary if vocabulary else ""} to the test target.
import CoreML
import XCTest

/// Replays the golden vectors (inputs and PyTorch's outputs) through Core ML on this device.
final class {name}Tests: XCTestCase {{
    struct Values: Decodable {{
        let shape: [Int]
        let dtype: String?
        let data: [Float]
    }}

    struct TokenProbe: Decodable {{
        let text: String
        let ids: [Int32]
    }}

    struct Call: Decodable {{
        let inputs: [String: Values]
        let outputs: [String: Values]
        let units: [String: Float]?  // this call's own scales (a window's), where they differ from call to call
    }}

    struct Golden: Decodable {{
        let tolerance: [String: Float]
        let units: [String: Float]?  // per output: the absolute tolerance is atol x this scale
        let stateful: Bool
        let calls: [Call]
        let tokenizer: [TokenProbe]?
    }}

    func load() throws -> ({name}, Golden) {{
        let bundle = Bundle(for: {name}Tests.self)
        let url = try XCTUnwrap(bundle.url(forResource: {_swift_string(resource_name)}, withExtension: "mlmodelc")
            ?? bundle.url(forResource: {_swift_string(resource_name)}, withExtension: "mlpackage"))
{load}
        let goldenURL = try XCTUnwrap(bundle.url(forResource: {_swift_string(resource)}, withExtension: "json"))
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: goldenURL))
        return (wrapper, golden)
    }}

    func check(_ result: MLFeatureProvider, _ call: Call, _ tolerance: [String: Float], _ units: [String: Float]?, _ index: Int) throws {{
        let rtol = tolerance["rtol"] ?? 1e-4
        for (output, expected) in call.outputs {{
            let atol = (tolerance["atol"] ?? 1e-4) * (call.units?[output] ?? units?[output] ?? 1)
            let array = try XCTUnwrap(result.featureValue(for: output)?.multiArrayValue, "call \\(index): no output \\(output)")
            let got = try {name}.MultiArray.read(array)
            XCTAssertEqual(got.shape, expected.shape, "call \\(index): \\(output) shape")
            for (g, w) in zip(got.values, expected.data) {{
                XCTAssertLessThanOrEqual(abs(g - w), atol + rtol * abs(w), "call \\(index): \\(output) \\(g) vs \\(w)")
            }}
        }}
    }}

    func features(_ call: Call) throws -> MLDictionaryFeatureProvider {{
        var values: [String: MLFeatureValue] = [:]
        for (input, value) in call.inputs {{
            let array = value.dtype == "int32"
                ? try {name}.MultiArray.make(int32: value.data.map {{ Int32($0) }}, shape: value.shape)
                : try {name}.MultiArray.make(value.data, shape: value.shape)
            values[input] = MLFeatureValue(multiArray: array)
        }}
        return try MLDictionaryFeatureProvider(dictionary: values)
    }}

{available}    func testGoldenVectors() throws {{
        let (wrapper, golden) = try load()
        let model = wrapper.model
        {"let state = model.makeState()" if states else "// Each call stands alone (explicit state, if any, is among its inputs)."}
        for (index, call) in golden.calls.enumerated() {{
            let result = try model.prediction(from: features(call){", using: state" if states else ""})
            try check(result, call, golden.tolerance, golden.units, index)
        }}
    }}{extra_test}
}}
"""


# -- classifiers ------------------------------------------------------------------------------

_CLASSIFIER_HELPERS = """
/// A class name as stored in the metadata: a JSON string or integer.
struct ClassName: Decodable {
    let text: String

    init(from decoder: Decoder) throws {
        let value = try decoder.singleValueContainer()
        if let s = try? value.decode(String.self) {
            text = s
        } else {
            text = String(try value.decode(Int.self))
        }
    }
}

/// One classification: the most probable class and every class's probability.
public struct Prediction {
    public let classes: [String]
    public let probabilities: [Float]

    /// The most probable class: the first of equal maxima, as predict (numpy's argmax) and the
    /// package's classLabel pick it (a max by the probabilities returns the last of equal ones).
    public var label: String {
        var best = 0
        for index in probabilities.indices where probabilities[index] > probabilities[best] {
            best = index
        }
        return classes[best]
    }

    /// The k most probable classes, most probable first.
    public func top(_ k: Int) -> [(label: String, probability: Float)] {
        // Ties in class order, as predict's stable sort gives them.
        let order = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
        return order.prefix(k).map { (classes[$0], probabilities[$0]) }
    }
}
"""

_TOKENIZER = """
/// Text -> token ids by the rules stored with the model (see coreml_lstm/classify/tokenizer.py):
/// 1. lowercase (if the rules say so), 2. NFC, 3. split on Unicode scalars: "char" makes every
/// scalar a token; "word" keeps maximal runs of letters, marks, numbers, "_" and "'", and drops
/// every other scalar; 4. a token's id is its index in the vocabulary, else the out-of-vocabulary id.
public struct Tokenizer {
    public let level: String
    public let lowercase: Bool
    public let oovId: Int32
    let ids: [String: Int32]

    static let wordCategories: Set<Unicode.GeneralCategory> = [
        .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
        .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .letterNumber, .otherNumber,
    ]

    struct File: Decodable {
        let level: String
        let lowercase: Bool
        let oov_id: Int
        let tokens: [String?]
    }

    /// Reads the vocabulary file written next to the package (`<name>.vocab.json`).
    public init(contentsOf url: URL) throws {
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        level = file.level
        lowercase = file.lowercase
        oovId = Int32(file.oov_id)
        var ids: [String: Int32] = [:]
        for (index, token) in file.tokens.enumerated() {
            if let token = token {
                ids[token] = Int32(index)
            }
        }
        self.ids = ids
    }

    /// Rules 1-3: the tokens of a text.
    public func split(_ text: String) -> [String] {
        let cased = lowercase ? text.lowercased() : text
        let normal = cased.precomposedStringWithCanonicalMapping
        if level == "char" {
            return normal.unicodeScalars.map { String($0) }
        }
        var tokens: [String] = []
        var current = String.UnicodeScalarView()
        for scalar in normal.unicodeScalars {
            if scalar == "_" || scalar == "'" || Tokenizer.wordCategories.contains(scalar.properties.generalCategory) {
                current.append(scalar)
            } else if !current.isEmpty {
                tokens.append(String(current))
                current = String.UnicodeScalarView()
            }
        }
        if !current.isEmpty {
            tokens.append(String(current))
        }
        return tokens
    }

    /// Rules 4 and 5: the ids of a text's tokens; a text with none is one out-of-vocabulary token.
    public func encode(_ text: String) -> [Int32] {
        let encoded = split(text).map { ids[$0] ?? oovId }
        return encoded.isEmpty ? [oovId] : encoded
    }
}
"""


def classifier_wrapper(name: str, program, meta: dict) -> str:
    text = meta.get("task") == "text-classify"
    inp = program.inputs[0]
    body = [
        "",
        f"/// {program.metadata.get('short_description') or name}",
        f"public final class {name} {{",
        "    public let model: MLModel",
        "    /// Class names in the order of the probabilities (from the package's metadata).",
        "    public let classes: [String]",
        f"    /// The longest {'text, in tokens,' if text else 'sequence'} the model takes.",
        "    public let maxLength: Int",
    ]
    if text:
        body += ["    /// The tokenizer the model was trained with.", "    public let tokenizer: Tokenizer"]
    else:
        body += ["    /// Channel columns in the order the model reads them.", "    public let channels: [String]"]
    vocab_arg = ", vocabulary: URL" if text else ""
    body += [
        "",
        "    /// Loads a compiled model (.mlmodelc) or compiles a package (.mlpackage) first"
        + (" and reads the vocabulary file written next to the package." if text else "."),
        f"    public init(contentsOf url: URL{vocab_arg}, configuration: MLModelConfiguration = MLModelConfiguration()) throws {{",
        *_load_model(name),
        "        // class_labels: each class as text, as Python writes it (1.5, not a JSON number Swift may read as 1.5 or 1)",
        "        classes = try entry(metadata[\"coreml_lstm.class_labels\"] != nil ? \"class_labels\" : \"classes\", as: [ClassName].self).map { $0.text }",
        "        maxLength = try entry(\"max_length\", as: Int.self)",
    ]
    if text:
        body += ["        tokenizer = try Tokenizer(contentsOf: vocabulary)"]
    else:
        body += ["        channels = try entry(\"channels\", as: [String].self)"]
    body.append("    }")
    body += [
        "",
        "    func classify(_ features: MLFeatureProvider) throws -> Prediction {",
        "        let result = try model.prediction(from: features)",
        f"        guard let array = result.featureValue(for: {name}Feature.probabilities)?.multiArrayValue else {{",
        f"            throw {name}Error.output(\"the model returned no probabilities\")",
        "        }",
        "        return Prediction(classes: classes, probabilities: try MultiArray.read(array).values)",
        "    }",
    ]
    if text:
        body += [
            "",
            "    /// The class of a text, tokenized by the stored rules.",
            "    public func predict(text: String) throws -> Prediction {",
            "        let ids = tokenizer.encode(text)",
            "        guard !ids.isEmpty, ids.count <= maxLength else {",
            f"            throw {name}Error.shape(\"the text has \\(ids.count) tokens; the model takes 1 to \\(maxLength)\")",
            "        }",
            "        let array = try MultiArray.make(int32: ids, shape: [1, ids.count])",
            f"        return try classify(MLDictionaryFeatureProvider(dictionary: [{name}Feature.{identifier(inp.name)}: MLFeatureValue(multiArray: array)]))",
            "    }",
        ]
    else:
        body += [
            "",
            "    /// The class of one sequence as it is, oldest step first (rows[i][j] is channels[j] at step i, raw units).",
            "    public func predict(sequence rows: [[Float]]) throws -> Prediction {",
            "        guard !rows.isEmpty, rows.count <= maxLength, rows.allSatisfy({ $0.count == channels.count }) else {",
            f"            throw {name}Error.shape(\"expected 1 to \\(maxLength) rows of \\(channels.count) values (\\(channels)), got \\(rows.count) rows\")",
            "        }",
            "        let array = try MultiArray.make(rows.flatMap { $0 }, shape: [1, rows.count, channels.count])",
            f"        return try classify(MLDictionaryFeatureProvider(dictionary: [{name}Feature.{identifier(inp.name)}: MLFeatureValue(multiArray: array)]))",
            "    }",
        ]
    body.append("}")
    return _assemble(name, program, body, _CLASSIFIER_HELPERS + (_TOKENIZER if text else ""))


# -- any module ---------------------------------------------------------------------------------


def _shape_doc(t) -> str:
    if t.enumerated_shapes:
        return " or ".join(str(tuple(s)) for s in t.enumerated_shapes)
    if t.shape_range:
        return "(" + ", ".join(str(lo) if lo == hi else f"{lo}...{hi}" for lo, hi in t.shape_range) + ")"
    return str(tuple(t.shape))


def _shape_check(name: str, t, var: str) -> list[str]:
    """Swift lines that throw unless ``var`` (a [Int] shape) is one the package accepts."""
    if t.enumerated_shapes:
        allowed = ", ".join(str(list(s)) for s in t.enumerated_shapes)
        cond = f"[{allowed}].contains({var})"
    elif t.shape_range:
        bounds = ", ".join(f"({lo}, {hi})" for lo, hi in t.shape_range)
        cond = f"{var}.count == {len(t.shape_range)} && zip({var}, [{bounds}]).allSatisfy({{ $0.0 >= $0.1.0 && $0.0 <= $0.1.1 }})"
    else:
        cond = f"{var} == {list(t.shape)}"
    return [
        f"        guard {cond} else {{",
        f"            throw {name}Error.shape(\"{t.name}: shape \\({var}) is not {_shape_doc(t)}\")",
        "        }",
    ]


def module_wrapper(name: str, program, meta: dict) -> str:
    """A wrapper for any package: one typed ``predict`` taking every input as row-major values
    (Float, or Int32 for integer inputs) with its shape when the shape is flexible, and an
    ``Output`` with one Tensor per output; ``makeState()`` and ``predict(..., using:)`` for
    packages with Core ML states."""
    states = bool(program.states)
    body = [
        "",
        f"/// {program.metadata.get('short_description') or name}",
        f"public final class {name} {{",
        "    public let model: MLModel",
        "",
        "    /// Loads a compiled model (.mlmodelc) or compiles a package (.mlpackage) first.",
        "    public init(contentsOf url: URL, configuration: MLModelConfiguration = MLModelConfiguration()) throws {",
        *_load_model(name, metadata=False),
        "    }",
        _output_struct(name, program, False, carried=True, doc="The outputs of one call.").rstrip("\n"),
    ]
    params, lines = [], []
    for t in program.inputs:
        ident = identifier(t.name)
        flexible = bool(t.enumerated_shapes or t.shape_range)
        integer = t.dtype.kind in "iu"
        params.append(f"{ident}: [{'Int32' if integer else 'Float'}]" + (f", {ident}Shape: [Int]" if flexible else ""))
        shape = f"{ident}Shape" if flexible else str(list(t.shape))
        if flexible:
            lines += _shape_check(name, t, f"{ident}Shape")
        make = f"MultiArray.make(int32: {ident}, shape: {shape})" if integer else f"MultiArray.make({ident}, shape: {shape})"
        lines.append(f"        let {ident}Array = try {make}")
    docs = [f"    ///   - {identifier(t.name)}: {t.name}, {'int32' if t.dtype.kind in 'iu' else 'float32'} of shape {_shape_doc(t)}, row-major"
            + (f" (give its shape as {identifier(t.name)}Shape)" if t.enumerated_shapes or t.shape_range else "") for t in program.inputs]
    features = ", ".join(f"{name}Feature.{identifier(t.name)}: MLFeatureValue(multiArray: {identifier(t.name)}Array)" for t in program.inputs)

    def call(signature: str, predict: str) -> list[str]:
        return ["", "    /// One call of the model.", "    /// - Parameters:", *docs, signature, *lines,
                f"        let features = try MLDictionaryFeatureProvider(dictionary: [{features}])",
                f"        return try Output({predict})", "    }"]

    if states:
        body += ["", "    /// A fresh (zero) state for a sequence of calls.", "    @available(iOS 18.0, macOS 15.0, *)",
                 "    public func makeState() -> MLState {", "        model.makeState()", "    }"]
        body += call(f"    @available(iOS 18.0, macOS 15.0, *)\n    public func predict({', '.join(params)}, using state: MLState) throws -> Output {{",
                     "model.prediction(from: features, using: state)")
    else:
        body += call(f"    public func predict({', '.join(params)}) throws -> Output {{", "model.prediction(from: features)")
    body.append("}")
    return _assemble(name, program, body, "", "; calls with a state need iOS 18 / macOS 15 (MLState)" if states else "")
