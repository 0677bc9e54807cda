"""Read Kokoro's float weights back out of the int8 ONNX graph (dequantise, un-fold, reorder).

Why a graph walk and not a name table: the quantiser renamed many weights (weight-norm folded convs
are ``/…/Mul_output_0_quantized``, ALBERT matrices are ``onnx::MatMul_*``, LSTMs ``onnx::LSTM_*``),
so each is traced to its module through the bias its node consumes, or the node's own name.
Zero-points are shared between layers by value, so each is read from the consuming node's inputs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["onnx_state_dict", "WeightMappingError"]

_BIAS = re.compile(r"^((?:encoder|decoder)\.[\w.]+?)\.bias(?:_scale|_quantized\w*)?$")
_LSTM_NODES = {
    "/encoder/text_encoder/lstm/LSTM_quant": "text_encoder.lstm",
    "/encoder/predictor/lstm/LSTM_quant": "predictor.lstm",
    "/encoder/shared/LSTM_quant": "predictor.shared",
}


class WeightMappingError(RuntimeError):
    """The ONNX graph does not have the structure the rebuild expects."""


def _module_name(onnx_name: str) -> str:
    """ONNX parameter prefix → our module path (the export wrapped the model as encoder/decoder)."""
    if onnx_name.startswith("decoder.decoder."):
        return "decoder." + onnx_name[len("decoder.decoder.") :]
    if onnx_name.startswith("encoder."):
        return onnx_name[len("encoder.") :]
    raise WeightMappingError(f"unexpected parameter name {onnx_name!r}")


def _node_module(node_name: str) -> str:
    """Module path from an export scope name, for the few layers without a bias to trace."""
    parts = [p for p in node_name.split("/") if p][:-1]
    if parts[:2] == ["decoder", "decoder"]:
        return "decoder." + ".".join(parts[2:])
    if parts[0] == "encoder" and re.match(r"^(F0|N)\.\d+$", parts[1]):
        return "predictor." + ".".join(parts[1:])
    raise WeightMappingError(f"cannot place node {node_name!r}")


def onnx_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """float32 arrays keyed by :class:`KokoroNet` parameter names."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    init = {t.name: t for t in g.initializer}
    cache: dict[str, np.ndarray] = {}

    def arr(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = numpy_helper.to_array(init[name])
        return cache[name]

    consumers: dict[str, list] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)

    def dequant(q: str, scale: str, zp: str | None) -> np.ndarray:
        x = arr(q).astype(np.float32)
        z = arr(zp).astype(np.float32) if zp else np.float32(0)
        return (x - z) * arr(scale).astype(np.float32)

    def scale_name(q: str) -> str:
        s = q[: -len("_quantized")] + "_scale"
        if s not in init:
            raise WeightMappingError(f"no scale initializer for {q}")
        return s

    def traced_bias_module(node) -> str | None:
        frontier, seen = [node], set()
        for _ in range(5):
            nxt = []
            for n in frontier:
                for out in n.output:
                    for c in consumers[out]:
                        if c.name in seen:
                            continue
                        seen.add(c.name)
                        for i in c.input:
                            m = _BIAS.match(i)
                            if m:
                                return m.group(1)
                        nxt.append(c)
            frontier = nxt
        return None

    sd: dict[str, np.ndarray] = {}

    def put(key: str, value: np.ndarray) -> None:
        if key in sd and not np.array_equal(sd[key], value):
            raise WeightMappingError(f"two different tensors map to {key}")
        sd[key] = np.ascontiguousarray(value, dtype=np.float32)

    lstm_count = 0
    for n in g.node:
        if n.op_type in ("ConvInteger", "MatMulInteger"):
            q = n.input[1]
            zp = n.input[3] if len(n.input) > 3 and n.input[3] else None
            w = dequant(q, scale_name(q), zp)
            if q.endswith(".weight_quantized"):
                mod = q[: -len(".weight_quantized")]
            else:
                mod = traced_bias_module(n)
                if mod is None:
                    mod = "encoder." + _node_module(n.name) if n.op_type == "ConvInteger" else None
                    if mod is None:
                        raise WeightMappingError(f"cannot place {n.name}")
                    mod = mod.replace("encoder.decoder.", "decoder.decoder.")
            if n.op_type == "MatMulInteger":
                w = w.T
            put(_module_name(mod) + ".weight", w)
        elif n.op_type == "DequantizeLinear" and n.input[0].endswith("/Gather_output_0_quantized"):
            gather = [x for x in g.node if n.input[0] in x.output][0]
            q = gather.input[0]
            put(_module_name(q[: -len(".weight_quantized")]) + ".weight", dequant(q, n.input[1], n.input[2]))
        elif n.op_type in ("ConvTranspose", "Conv") and n.input[1] in init:
            if len(n.input) < 3:
                continue  # the export's own iSTFT basis; we use torch.istft instead
            mod = n.input[2][: -len(".bias")]
            put(_module_name(mod) + ".weight", arr(n.input[1]))
        elif n.op_type == "MatMul" and n.input[1] in init:
            mod = traced_bias_module(n)
            if mod is None:
                raise WeightMappingError(f"cannot place {n.name}")
            put(_module_name(mod) + ".weight", arr(n.input[1]).T)
        elif n.op_type == "DynamicQuantizeLSTM":
            lstm_count += 1
            mod = _LSTM_NODES.get(n.name)
            if mod is None:
                m = re.match(r"^/encoder/predictor/text_encoder/(lstms\.\d+)/LSTM_quant$", n.name)
                if not m:
                    raise WeightMappingError(f"cannot place LSTM {n.name}")
                mod = "predictor.text_encoder." + m.group(1)
            wq, rq, b = n.input[1], n.input[2], n.input[3]
            w = (arr(wq).astype(np.float32) - arr(n.input[9]).astype(np.float32)[:, None, None]) * arr(
                n.input[8]
            )[:, None, None]
            r = (arr(rq).astype(np.float32) - arr(n.input[11]).astype(np.float32)[:, None, None]) * arr(
                n.input[10]
            )[:, None, None]
            bias = arr(b).astype(np.float32)
            hidden = r.shape[1]

            def reorder(x: np.ndarray, axis: int) -> np.ndarray:
                i, o, f, c = np.split(x, 4, axis=axis)  # ONNX gate order → PyTorch (i, f, g, o)
                return np.concatenate([i, f, c, o], axis=axis)

            for d, suffix in enumerate(["", "_reverse"]):
                put(f"{mod}.weight_ih_l0{suffix}", reorder(w[d].T, 0))
                put(f"{mod}.weight_hh_l0{suffix}", reorder(r[d].T, 0))
                put(f"{mod}.bias_ih_l0{suffix}", reorder(bias[d, : 4 * hidden], 0))
                put(f"{mod}.bias_hh_l0{suffix}", reorder(bias[d, 4 * hidden :], 0))
    if lstm_count != 6:
        raise WeightMappingError(f"expected 6 LSTMs in the graph, found {lstm_count}")

    # Plain float parameters that kept their PyTorch names (biases, LayerNorms, Snake alphas).
    for name in init:
        if not name.startswith(("encoder.", "decoder.decoder.")) or name.endswith(
            ("_quantized", "_scale", "_zero_point", "_shape")
        ):
            continue
        if ".stft." in name:
            continue
        put(_module_name(name), arr(name))
    return sd
