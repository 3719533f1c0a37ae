"""The measurements of benchmarks/train_throughput.py, run in its subprocesses (one per ISA).

    python benchmarks/train_profile.py measure '{"steps": 6, "threads": 2, "loop": 6}'
    python benchmarks/train_profile.py kernels '{...}'   # one step each, for oneDNN's lines

``measure`` prints one JSON line; the driver writes the Markdown (:func:`markdown`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SKIP_TRAIN_KEYS = ("runs", "threads", "seed")  # not training parameters


def load_config() -> dict:
    import yaml

    from skydetect.config import validate_config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate_config(cfg, ROOT / "config" / "schema.yaml")
    return cfg


# ------------------------------------------------------------------ the two training steps
def unet_setup(cfg: dict, jit_compile: bool = False, deterministic: bool = True):
    """The default U-Net compiled as skydetect.clusters.train compiles it: ``step()`` is one
    step of ``Model.fit`` (its train function) on an in-memory random batch (``jit_compile``:
    the train function compiled by XLA instead; ``deterministic``: op determinism, as the
    workflow trains on a CPU)."""
    import tensorflow as tf

    from skydetect.clusters import losses as L
    from skydetect.clusters import models as M
    from skydetect.clusters import train as T

    cl = cfg["clusters"]
    tp = T.train_params({k: v for k, v in cl["train"].items() if k not in SKIP_TRAIN_KEYS})
    runs = cl["train"].get("runs") or {}
    bands = len(next(iter(runs.values()))["bands"]) if runs else len(cfg["planck"]["bands"])
    size, batch = int(cl["patch"]["size"]), int(tp["batch_size"])
    if deterministic:
        tf.config.experimental.enable_op_determinism()  # as training on a CPU
    tf.keras.utils.set_random_seed(0)
    model = M.build_model((size, size, bands), M.model_params(cl["model"]))
    opt = (
        tf.keras.optimizers.Adam(float(tp["learning_rate"]))
        if tp["optimizer"] == "adam"
        else tf.keras.optimizers.SGD(float(tp["learning_rate"]), momentum=float(tp["momentum"]))
    )
    loss = L.get_loss(tp["loss"], tp["loss_params"].get(tp["loss"], {}))
    model.compile(
        optimizer=opt, loss=loss, metrics=L.segmentation_metrics(), jit_compile=jit_compile
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, bands)).astype(np.float32)
    y = (rng.random((batch, size, size, 1)) < 0.05).astype(np.float32)
    # the step of Model.fit: its compiled train function on an iterator of batches
    train_fn = model.make_train_function()
    batches = iter(tf.data.Dataset.from_tensors((x, y)).repeat())

    def step():
        logs = train_fn(batches)
        return float(logs["loss"])

    return {
        "model": model,
        "step": step,
        "batch": batch,
        "loss": loss,
        "xy": (tf.constant(x), tf.constant(y)),
    }


def ssd_setup(cfg: dict):
    """The default SSD with the training step of skydetect.bubbles.train (SSD loss, AdamW,
    global clipping); (model, step, batch)."""
    import tensorflow as tf

    from skydetect.bubbles.ssd.loss import SSDLoss
    from skydetect.bubbles.ssd.model import build_ssd
    from skydetect.bubbles.train import ARCH_KEYS, TrainSettings, make_targets, train_step

    b = cfg["bubbles"]
    st = TrainSettings.from_config(b["train"], b["ssd"])
    size = int(b["preprocess"]["input_size"])
    tf.keras.utils.set_random_seed(0)
    arch = {k: b["ssd"][k] for k in ARCH_KEYS if b["ssd"].get(k) is not None}
    model, priors = build_ssd({**arch, "input_size": size})
    loss_fn = SSDLoss(st.neg_pos_ratio, st.min_negatives)
    opt = tf.keras.optimizers.AdamW(
        st.learning_rate, weight_decay=st.weight_decay, global_clipnorm=st.clipnorm or None
    )

    step = train_step(model, loss_fn, opt)  # the step train_ssd runs

    batch = st.batch_bubbles + st.batch_negatives
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, size, size, model.input_shape[-1]), np.float32))
    boxes = [
        np.array([[20.0, 30.0, 70.0, 90.0]]) if i < st.batch_bubbles else np.zeros((0, 4))
        for i in range(batch)
    ]
    y = tf.constant(make_targets(boxes, size, priors, st.iou_match))
    return {
        "model": model,
        "step": lambda: float(step(x, y)[0]),
        "batch": batch,
        "loss": lambda y, p: tf.add_n(loss_fn.terms(y, p)),
        "xy": (x, y),
    }


def phase_times(model, loss, x, y, repeats: int = 3) -> dict:
    """Best-of-``repeats`` seconds of the whole network's forward pass (training mode) and of
    forward + loss + gradients (no optimiser)."""
    import tensorflow as tf

    from skydetect.perf import best_seconds

    def fwd(x):
        return model(x, training=True)

    def grads(x, y):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        return tape.gradient(value, model.trainable_variables)

    return {
        "forward_s": best_seconds(tf.function(fwd), (x,), repeats),
        "gradients_s": best_seconds(tf.function(grads), (x, y), repeats),
    }


def network_figures(name, net, steps, peers, detail=True, repeats=5) -> dict:
    """Samples/s and fraction of the peak of ``net``'s training step; with ``detail`` its
    phases and its layers alone too (each the best of ``repeats``; the matmul peak timed
    likewise beside them)."""
    from skydetect import perf

    model, batch = net["model"], net["batch"]
    macs = perf.model_macs(model)
    flop = perf.TRAIN_PASSES * 2 * macs * batch  # per step
    timing = perf.interleaved(net["step"], steps, peers)
    t = np.asarray(timing["step_s"])
    out = {}
    if detail:
        out = phase_times(model, net["loss"], *net["xy"], repeats=repeats)
        out["groups"] = perf.group_layer_times(perf.layer_times(model, batch, repeats=repeats))
        beside = perf.interleaved(lambda: None, 1, peers, peer_repeats=repeats, warmup=0)
        out["layers_peak"] = max(max(g) for g in beside["gflops"])
    return {
        **out,
        **perf.peak_fractions(flop, timing),
        "name": name,
        "batch": batch,
        "params": int(model.count_params()),
        "macs": macs,
        "samples_per_s_best": batch / t.min(),
        "samples_per_s_mean": batch * len(t) / t.sum(),
        "step_s": [float(v) for v in t],
    }


# ------------------------------------------------------------------ the workflow's own loops
def unet_loop(cfg: dict, batches: int, workdir: Path) -> dict:
    """skydetect.clusters.train.train for two epochs on synthetic HDF5 files (``batches``
    training batches, a quarter as many validation ones); the second epoch split into its
    steps, validation and the rest; and the input pipeline alone over the same file."""
    import h5py
    import tensorflow as tf

    from skydetect.clusters import train as T
    from skydetect.clusters.pipeline import BatchSource

    cl = cfg["clusters"]
    tp = {k: v for k, v in cl["train"].items() if k not in SKIP_TRAIN_KEYS}
    runs = cl["train"].get("runs") or {}
    bands = next(iter(runs.values()))["bands"] if runs else cfg["planck"]["bands"]
    size, batch = int(cl["patch"]["size"]), int(tp["batch_size"])
    rng = np.random.default_rng(1)
    paths = {}
    for split, n in (("train", batches * batch), ("validation", max(1, batches // 4) * batch)):
        paths[split] = workdir / f"{split}.h5"
        with h5py.File(paths[split], "w") as f:
            f["inputs"] = rng.normal(size=(n, size, size, len(bands))).astype(np.float32)
            f["masks"] = (rng.random((n, size, size)) < 0.05).astype(np.uint8)
            f.attrs["bands"] = [str(b) for b in bands]

    class Clock(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.t = {}

        def _mark(self, key):
            self.t.setdefault(key, []).append(time.perf_counter())

        def on_epoch_begin(self, epoch, logs=None):
            self._mark("epoch_begin")

        def on_epoch_end(self, epoch, logs=None):
            self._mark("epoch_end")

        def on_test_begin(self, logs=None):
            self._mark("val_begin")

        def on_test_end(self, logs=None):
            self._mark("val_end")

    clock = Clock()
    t0 = time.perf_counter()
    T.train(paths["train"], paths["validation"], workdir / "model", cl["model"],
            {**tp, "epochs": 2, "patience": 10}, seed=0, extra_callbacks=[clock])  # fmt: skip
    total = time.perf_counter() - t0
    c = clock.t
    # epoch 2; the checkpoint callback runs before this one: its time is in the next gap
    epoch = c["epoch_end"][1] - c["epoch_begin"][1]
    validation = c["val_end"][1] - c["val_begin"][1]
    src = BatchSource(paths["train"], batch, seed=0, shuffle=True, augment=True)
    t1 = time.perf_counter()
    n = sum(1 for _ in src())
    data = time.perf_counter() - t1
    return {
        "batches": batches,
        "batch": batch,
        "epoch_s": epoch,
        "train_s": c["val_begin"][1] - c["epoch_begin"][1],
        "validation_s": validation,
        "validation_batches": max(1, batches // 4),
        "data_alone_s": data * batches / max(n, 1),
        "first_epoch_s": c["epoch_end"][0] - c["epoch_begin"][0],
        "run_s": total,
    }


class _SyntheticCrops:
    """``targets(e)``: ``n`` crops of a synthetic 2-channel field through the library's
    preprocessing and augmentation, one box each (the work of BubbleCrops per crop)."""

    def __init__(self, field, n, input_size, preprocess):
        self.field, self.n, self.input_size, self.pp = field, n, input_size, preprocess

    def targets(self, epoch):
        from skydetect.bubbles.crops import augment
        from skydetect.bubbles.preprocess import preprocess_window

        rng = np.random.default_rng([7, epoch])
        h, w = self.field.shape[1:]
        s = self.input_size
        for _ in range(self.n):
            size = int(rng.integers(40, 200))
            x0, y0 = int(rng.integers(0, w - size)), int(rng.integers(0, h - size))
            x = preprocess_window(self.field, x0, y0, size, **self.pp)
            boxes = np.array([[0.3 * s, 0.3 * s, 0.7 * s, 0.7 * s]])
            x, boxes = augment(x, boxes, int(rng.integers(4)), bool(rng.random() < 0.5))
            yield x, boxes.astype(np.float32), np.zeros((0, 4), np.float32)


def ssd_loop(cfg: dict, batches: int, workdir: Path) -> dict:
    """skydetect.bubbles.train.train_ssd for two epochs on crops of a synthetic field
    (``batches`` batches), validated every epoch on 8 x ``batches`` synthetic windows; the
    second epoch split into crop making, the training loop (steps, box matching, negative
    augmentation) and validation with the checkpoint."""
    from skydetect.bubbles.detect import DetectSettings
    from skydetect.bubbles.preprocess import preprocess_windows
    from skydetect.bubbles.ssd.model import build_ssd
    from skydetect.bubbles.train import (
        ARCH_KEYS,
        TrainSettings,
        ValidationField,
        train_ssd,
        validate,
    )

    b = cfg["bubbles"]
    st = TrainSettings.from_config(
        b["train"], b["ssd"], epochs=2, validate_every=1, crop_repeats=1, patience=10
    )
    pp = dict(b["preprocess"])
    size = int(pp["input_size"])
    rng = np.random.default_rng(2)
    field = rng.lognormal(0.0, 0.5, size=(2, 600, 600)).astype(np.float32)
    crops = _SyntheticCrops(field, batches * st.batch_bubbles, size, pp)
    n_neg = 4 * batches * st.batch_negatives
    negatives = {
        "inputs": rng.random((n_neg, size, size, 2), np.float32),
        "weight": np.ones(n_neg),
    }
    nw = 8 * batches
    wsz = rng.integers(40, 200, nw)
    x0, y0 = rng.integers(0, 600 - wsz), rng.integers(0, 600 - wsz)
    val = ValidationField(
        "synthetic", preprocess_windows(field, x0, y0, wsz, **pp), x0, y0, wsz,
        np.array([[100.0, 100.0, 160.0, 160.0]]), np.array([True]), (600, 600),
    )  # fmt: skip
    arch = {k: b["ssd"][k] for k in ARCH_KEYS if b["ssd"].get(k) is not None}
    model, priors = build_ssd({**arch, "input_size": size})
    detect = DetectSettings.from_config(b["detect"])
    t0 = time.perf_counter()
    res = train_ssd(model, priors, crops, negatives, [val], st, workdir / "ssd", 0, detect)
    total = time.perf_counter() - t0
    row = res["history"][1]
    steps = batches  # batch_bubbles crops each, topped up with batch_negatives negatives
    n_img = steps * (st.batch_bubbles + st.batch_negatives)
    t_loop = n_img / row["images_per_s"]
    t1 = time.perf_counter()
    validate(model, priors, [val], detect, st.thresholds, st.iou_threshold)
    t_val = time.perf_counter() - t1
    return {
        "batches": steps,
        "batch": st.batch_bubbles + st.batch_negatives,
        "epoch_s": row["seconds"],
        "crops_s": row["data_s"],
        "loop_s": t_loop,
        "validation_s": t_val,
        "validation_windows": nw,
        "checkpoint_s": max(row["seconds"] - row["data_s"] - t_loop - t_val, 0.0),
        "run_s": total,
    }


# ------------------------------------------------------------------ entry points
def measure(spec: dict) -> dict:
    import skydetect  # noqa: F401  (legacy Keras before TensorFlow)

    import tensorflow as tf  # isort: skip

    from skydetect import perf

    threads = int(spec["threads"])
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cfg = load_config()
    peers = [perf.blas_matmul_timer(threads), perf.matmul_timer(tf)]
    out = {"cpu": perf.cpu_name(), "blas": perf.blas_core(), "threads": threads}
    detail = bool(spec.get("detail", True))
    out["unet"] = network_figures("unet", unet_setup(cfg), spec["steps"], peers, detail)
    out["ssd"] = network_figures("ssd", ssd_setup(cfg), spec["steps"], peers, detail)
    if not detail:
        return out
    with tempfile.TemporaryDirectory(prefix="train_profile_") as tmp:
        (Path(tmp) / "u").mkdir()
        (Path(tmp) / "s").mkdir()
        out["unet"]["loop"] = unet_loop(cfg, int(spec["loop"]), Path(tmp) / "u")
        out["ssd"]["loop"] = ssd_loop(cfg, int(spec["loop"]), Path(tmp) / "s")
    out["peak_after"] = [perf.matmul_gflops(p, 4) for p in peers]
    return out


def kernels(spec: dict) -> None:
    import skydetect  # noqa: F401

    import tensorflow as tf  # isort: skip

    tf.config.threading.set_intra_op_parallelism_threads(int(spec["threads"]))
    cfg = load_config()
    for setup in (unet_setup, ssd_setup):
        step = setup(cfg)["step"]
        for _ in range(2):
            step()
    sys.stderr.flush()


def kernel_summary(text: str) -> dict:
    """oneDNN's ISA and its convolution kernels by implementation and pass."""
    from skydetect import perf

    isa, counts = perf.onednn_kernels(text)
    conv: dict = {}
    for (prim, impl, pass_), n in counts.items():
        if prim in ("convolution", "deconvolution", "matmul", "inner_product"):
            conv.setdefault(f"{prim} {impl}", {})
            conv[f"{prim} {impl}"][pass_] = conv[f"{prim} {impl}"].get(pass_, 0) + n
    return {"isa": isa, "convolutions": conv}


# ------------------------------------------------------------------ the report
def _net_rows(r: dict, isa: str, threads: int) -> list[str]:
    t = r["step_s"]
    return [
        f"| {r['name']} | {isa} | {threads} | {r['batch']} | {r['params']:,} | {r['macs'] / 1e6:.0f} "
        f"| {r['samples_per_s_best']:.1f} ({r['samples_per_s_mean']:.1f}) "
        f"| {min(t):.3f}-{max(t):.3f} | {r['gflops_best']:.1f} ({r['gflops_mean']:.1f}) "
        f"| {r['peak_best']:.0f} ({r['peaks_mean'][0]:.0f} / {r['peaks_mean'][1]:.0f}) "
        f"| **{r['fraction_best']:.2f}** ({r['fraction_mean']:.2f}) |"
    ]


def _layer_table(r: dict, isa: str) -> list[str]:
    peak, b = r["layers_peak"], r["batch"]
    step = min(r["step_s"])
    conv = [g for g in r["groups"] if g["macs"]]
    other = [g for g in r["groups"] if not g["macs"]]

    def total(groups, key):
        return sum(g[key] for g in groups)

    def ms(x):
        return f"{x * 1e3:.0f} ms"

    layers_s = total(r["groups"], "forward_s") + total(r["groups"], "backward_s")
    lines = [
        "",
        f"**{r['name']} ({isa})**: best step {ms(step)} at batch {b} (mean "
        f"{ms(float(np.mean(r['step_s'])))}"
        f"): forward of the whole network {ms(r['forward_s'])}, backward (loss and gradients) "
        f"{ms(r['gradients_s'] - r['forward_s'])}, optimiser, metrics and Keras "
        f"{ms(max(step - r['gradients_s'], 0))}. Each layer alone: convolutions forward "
        f"{ms(total(conv, 'forward_s'))} + backward {ms(total(conv, 'backward_s'))} "
        f"({(total(conv, 'forward_s') + total(conv, 'backward_s')) / step:.0%} of the step), "
        f"the other layers ({', '.join(sorted({g['kind'] for g in other})) or 'none'}) forward "
        f"{ms(total(other, 'forward_s'))} + backward {ms(total(other, 'backward_s'))} "
        f"({(total(other, 'forward_s') + total(other, 'backward_s')) / step:.0%}); the layers "
        f"together {ms(layers_s)} against {ms(r['gradients_s'])} for forward + backward in one "
        f"graph (a layer alone also pays its own call and layout conversions). Peak for the layers: "
        f"the best single matmul timed right after them, {peak:.0f} GFLOP/s.",
        "",
        "| layers | output | channels | GMAC / batch | forward ms | backward ms | of best step "
        "| forward of peak | backward of peak |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for g in r["groups"]:
        gmac = g["macs"] * b / 1e9
        share = (g["forward_s"] + g["backward_s"]) / step
        if not share >= 0.005:
            continue
        f_eff = f"{2 * gmac / g['forward_s'] / peak:.2f}" if g["macs"] and g["forward_s"] else "–"
        b_eff = f"{4 * gmac / g['backward_s'] / peak:.2f}" if g["macs"] and g["backward_s"] else "–"
        lines.append(
            f"| {g['layers']} x {g['kind']} | {g['size']} | {g['channels']} | {gmac:.2f} "
            f"| {g['forward_s'] * 1e3:.1f} | {g['backward_s'] * 1e3:.1f} | {share:.0%} "
            f"| {f_eff} | {b_eff} |"
        )
    return lines


def _loop_lines(res: dict, isa: str) -> list[str]:
    u, s = res["unet"]["loop"], res["ssd"]["loop"]
    u_steps = u["batches"] * min(res["unet"]["step_s"])
    s_steps = s["batches"] * min(res["ssd"]["step_s"])
    ue = u["epoch_s"]
    se = s["epoch_s"]
    return [
        "",
        f"**The training loops ({isa})**, second epoch of a two-epoch run on synthetic data:",
        "",
        "| network | epoch s | training steps (at the best step's speed above) | data "
        "| validation | the rest |",
        "| --- | ---: | --- | --- | --- | --- |",
        f"| unet | {ue:.1f} | {u_steps:.1f} s ({u_steps / ue:.0%}) for {u['batches']} batches "
        f"of {u['batch']} | input pipeline alone {u['data_alone_s']:.1f} s (HDF5 read, "
        f"augmentation; in a tf.data thread beside the steps, prefetch 2) | "
        f"{u['validation_s']:.1f} s ({u['validation_s'] / ue:.0%}) for "
        f"{u['validation_batches']} batches | {ue - u_steps - u['validation_s']:.1f} s "
        f"(Keras fit loop, metrics, callbacks, steps slower than the best, the data when not "
        f"hidden) |",
        f"| ssd | {se:.1f} | {s_steps:.1f} s ({s_steps / se:.0%}) for {s['batches']} batches "
        f"of {s['batch']} | crops {s['crops_s']:.1f} s ({s['crops_s'] / se:.0%}; before the "
        f"steps, not overlapped); box matching and negatives in the loop "
        f"{max(s['loop_s'] - s_steps, 0):.1f} s ({max(s['loop_s'] - s_steps, 0) / se:.0%}) | "
        f"{s['validation_s']:.1f} s ({s['validation_s'] / se:.0%}) for "
        f"{s['validation_windows']} windows | checkpoint {s['checkpoint_s']:.1f} s |",
    ]


def markdown(results: list[dict], args, load) -> str:
    first = results[0]
    lines = [
        "# Training at the compute limit: the default U-Net and SSD against the machine's peak",
        "",
        f"`python benchmarks/train_throughput.py --isa {args.isa} --steps {args.steps} "
        f"--threads {' '.join(map(str, args.threads))} --loop {args.loop}` on {first['cpu']}"
        f", {os.cpu_count()} CPUs; load average {load[0]:.1f} at the end. TensorFlow on the given threads (intra-op; "
        "one inter-op), the matmuls on as many. The training jobs run on "
        f"{args.threads[0]} thread(s) each (`clusters.train.threads`, "
        "`bubbles.train.threads`).",
        "",
        "Training FLOP = 3 x 2 x the forward pass's multiply-accumulates (forward, backward "
        "for the input gradient, backward for the weight gradient; convolutions and dense "
        "layers only; the first layer's input gradient, which training skips, is counted "
        "too). Peak = the faster of two 2048² float32 matmuls on the same threads, numpy's "
        "BLAS and TensorFlow's, as in `benchmarks/full_sky_inference.py`, two of each timed "
        "after every step in the same process. In-memory random batches, after 2 warm-up "
        "steps. **Of peak** = the fastest step against the fastest single matmul: on a "
        "machine shared with other jobs each is the one least disturbed by them. In brackets "
        "the means: all steps against each matmul's total FLOP over its total seconds "
        "(`full_sky_inference.py`'s pairing), which other load pulls either way.",
        "",
        "| network | ISA | threads | batch | parameters | forward MMAC / sample | train "
        "samples/s best (mean) | step s min-max | GFLOP/s best (mean) | peak GFLOP/s best "
        "(mean BLAS / TF) | of peak (means) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: |",
    ]
    for res in results:
        for net in ("unet", "ssd"):
            lines += _net_rows(res[net], res["isa"], res["threads"])
    detailed = [res for res in results if res["detail"]]
    lines += ["", "## Kernels that ran", ""]
    for res in detailed:
        conv = "; ".join(
            f"`{impl}` ({', '.join(f'{p} {n}' for p, n in sorted(passes.items()))})"
            for impl, passes in sorted(res["kernels"]["convolutions"].items())
        )
        lines.append(
            f"- {res['isa']}: oneDNN ISA {res['kernels']['isa'] or 'not reported'}; BLAS "
            f"{res['blas']}; primitives created in two steps of each network: {conv or 'none'}"
        )
    lines += ["", f"## Where the time goes ({detailed[0]['threads']} thread(s))"]
    for res in detailed:
        for net in ("unet", "ssd"):
            lines += _layer_table(res[net], res["isa"])
        lines += _loop_lines(res, res["isa"])
    lines += ["", f"Headline: {detailed[0]['threads']} thread(s), as the training jobs run.", ""]
    for res in detailed:
        lines.append(
            f"training: unet {res['unet']['fraction_best']:.2f} of peak, ssd "
            f"{res['ssd']['fraction_best']:.2f} of peak ({res['isa']})"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    mode, spec = sys.argv[1], json.loads(sys.argv[2])
    if mode == "measure":
        print(json.dumps(measure(spec)))
    elif mode == "kernels":
        kernels(spec)
    else:
        raise SystemExit(f"unknown mode {mode!r} (measure, kernels)")
