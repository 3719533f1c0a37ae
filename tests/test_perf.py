"""The measuring tools of the benchmarks: ISA switch, kernel census, network cost and per-layer
times (skydetect.perf), and the critical path of a Snakemake run (skydetect.runlog)."""

from __future__ import annotations

import pytest

from skydetect import perf, runlog

# --------------------------------------------------------------------------- ISA switch


def test_avx2_limits_onednn_and_openblas_and_native_lifts_an_inherited_limit():
    env = perf.isa_environment("avx2", {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}
    native = perf.isa_environment("native", env)
    assert native == {"PATH": "/bin"}
    assert perf.isa_list("both") == ["native", "avx2"]
    assert perf.isa_list("avx2") == ["avx2"]
    with pytest.raises(ValueError, match="avx512"):
        perf.isa_environment("avx512", {})
    with pytest.raises(ValueError, match="sse"):
        perf.isa_list("sse")


VERBOSE = """\
onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)
onednn_verbose,v1,info,cpu,isa:Intel AVX2
onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,jit:avx2,backward_weights,src:f32
onednn_verbose,v1,primitive,create:cache_hit,cpu,convolution,jit:avx2,backward_weights,src:f32
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32
onednn_verbose,v1,primitive,create:cache_miss,cpu,reorder,jit:uni,undef,src:f32::blocked
some other line, convolution,jit:avx512_core,forward_training
"""


def test_onednn_kernels_counts_primitives_by_implementation_and_pass():
    isa, counts = perf.onednn_kernels(VERBOSE)
    assert isa == "Intel AVX2"
    assert counts[("convolution", "jit:avx2", "backward_weights")] == 2
    assert counts[("convolution", "brg_conv_fwd:avx2", "forward_training")] == 1
    assert counts[("reorder", "jit:uni", "undef")] == 1
    assert sum(counts.values()) == 4  # the line without the oneDNN prefix is not counted
    assert perf.onednn_kernels("nothing") == (None, {})


# --------------------------------------------------------------------------- network cost


def _small_net():
    import skydetect  # noqa: F401

    import tensorflow as tf  # isort: skip

    inp = tf.keras.Input((16, 16, 3))
    a = tf.keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    b = tf.keras.layers.ReLU(name="r1")(a)
    c = tf.keras.layers.Conv2D(4, 1, strides=2, name="c2")(b)
    d = tf.keras.layers.Conv2DTranspose(4, 2, strides=2, name="t1")(c)
    e = tf.keras.layers.Concatenate(name="cat")([b, d])
    return tf.keras.Model(inp, e)


def test_layer_macs_and_layer_times_cover_every_layer():
    model = _small_net()
    macs = {layer.name: perf.layer_macs(layer) for layer in model.layers}
    assert macs == {
        model.layers[0].name: 0,
        "c1": 16 * 16 * 3 * 3 * 3 * 8,
        "r1": 0,
        "c2": 8 * 8 * 8 * 4,
        "t1": 8 * 8 * 2 * 2 * 4 * 4,  # every input pixel scatters a kernel
        "cat": 0,
    }
    assert perf.model_macs(model) == sum(macs.values())
    rows = perf.layer_times(model, batch=2, repeats=1)
    assert [r["name"] for r in rows] == ["c1", "r1", "c2", "t1", "cat"]
    assert all(r["forward_s"] > 0 and r["backward_s"] >= 0 for r in rows)
    assert rows[-1]["output"] == (16, 16, 12)
    groups = perf.group_layer_times(rows)
    assert sum(g["layers"] for g in groups) == 5
    assert sum(g["macs"] for g in groups) == perf.model_macs(model)
    conv = [g for g in groups if g["kind"] == "Conv2D" and g["size"] == "16x16"]
    assert conv == [pytest.approx({**conv[0], "channels": "3->8", "layers": 1})]


def test_matmul_timers_count_flop_and_cpu_name_is_reported():
    import skydetect  # noqa: F401

    import tensorflow as tf  # isort: skip

    flop, secs = perf.blas_matmul_timer(1, n=64)(3)
    assert flop == 2 * 64**3 * 3 and secs > 0
    flop, secs = perf.matmul_timer(tf, n=32, streams=2)(2)
    assert flop == 2 * 32**3 * 2 * 2 and secs > 0
    assert perf.cpu_name()
    assert perf.blas_core()


# --------------------------------------------------------------------------- critical path


def _block(stamp, rule, jobid, inputs=(), outputs=(), wildcards=""):
    lines = [f"[Mon Dec  7 {stamp} 2026]", f"localrule {rule}:"]
    if inputs:
        lines.append(f"    input: {', '.join(inputs)}")
    if outputs:
        lines.append(f"    output: {', '.join(outputs)}")
    lines.append(f"    jobid: {jobid}")
    if wildcards:
        lines.append(f"    wildcards: {wildcards}")
    lines += ["    threads: 1", "Shell command: None"]
    return lines


def _done(stamp, jobid, rule, old=False):
    end = f"Finished job {jobid}." if old else f"Finished jobid: {jobid} (Rule: {rule})"
    return [f"[Mon Dec  7 {stamp} 2026]", end, "1 of 5 steps (20%) done"]


def fake_log(old=False) -> str:
    """sim 0-10; train 10-30 (input sim); cut 10-15 (input sim); predict 30-40 (input cut,
    ready at 15, but the two cores were busy with train and another job until 30); all."""
    lines = ["Building DAG of jobs...", "Execute 1 jobs..."]
    lines += _block("03:00:00", "sim", 1, outputs=["sky.fits", "cat.fits"])
    lines += _done("03:00:10", 1, "sim", old)
    lines += _block("03:00:10", "train", 2, inputs=["sky.fits"], outputs=["model.h5"])
    lines += _block("03:00:10", "cut", 3, inputs=["sky.fits", "cat.fits"], outputs=["p.h5"])
    lines += _done("03:00:15", 3, "cut", old)
    lines += _block("03:00:15", "plot", 5, inputs=["p.h5"], outputs=["p.png"])
    lines += _done("03:00:29", 5, "plot", old)
    lines += _done("03:00:30", 2, "train", old)
    lines += _block(
        "03:00:30", "predict", 4, inputs=["p.h5"], outputs=["d.csv"], wildcards="tile=6"
    )
    lines += _done("03:00:40", 4, "predict", old)
    lines += _block("03:00:40", "all", 0, inputs=["d.csv", "model.h5", "p.png"])
    lines += _done("03:00:40", 0, "all", old)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("old", [False, True])
def test_parse_jobs_reads_rules_times_files_and_both_finish_formats(old):
    jobs = runlog.parse_jobs(fake_log(old))
    assert sorted(jobs) == [0, 1, 2, 3, 4, 5]
    assert jobs[3].rule == "cut" and jobs[3].inputs == ["sky.fits", "cat.fits"]
    assert jobs[3].outputs == ["p.h5"] and jobs[3].seconds == 5
    assert jobs[2].seconds == 20
    assert jobs[4].label == "predict (tile=6)"


def test_critical_path_follows_inputs_and_the_job_that_freed_the_cores():
    chain = runlog.critical_path(runlog.parse_jobs(fake_log()))
    assert [r["job"].rule for r in chain] == ["sim", "train", "predict", "all"]
    assert [r["after"] for r in chain] == ["start", "input", "cores", "input"]
    assert chain[2]["waited_s"] == 15  # p.h5 ready at 15 s, started at 30 s
    assert (chain[0]["start"], chain[-1]["end"]) == (0, 40)
    deps = runlog.dependency_path(runlog.parse_jobs(fake_log()))
    assert [j.rule for j in deps] == ["sim", "train", "all"]  # 30 s: sim, cut, plot is 29 s
    text = "\n".join(runlog.critical_path_markdown(chain, dependency=deps))
    assert "| predict (tile=6) | 30 | 40 | 10 | 25% |" in text
    assert "40 s in these 4 jobs, 0 s between them" in text
    assert "1 of them started only when the job before them on the chain freed cores" in text
    assert "| train | 1 | 20 | 50% |" in text  # the chain's sum per rule
    assert "unlimited cores): 30 s, sim 10 s → train 20 s → all 0 s" in text


def test_unfinished_jobs_and_logs_without_jobs_are_reported():
    text = fake_log().split("[Mon Dec  7 03:00:40 2026]\nFinished jobid: 4")[0]
    jobs = runlog.parse_jobs(text)
    assert jobs[4].end is None
    chain = runlog.critical_path(jobs)  # the path to the last job that did finish
    assert chain[-1]["job"].rule == "train"
    with pytest.raises(ValueError, match="no Snakemake job"):
        runlog.parse_jobs("Building DAG of jobs...\nNothing to be done.\n")
    unfinished = runlog.parse_jobs("\n".join(_block("03:00:00", "sim", 1)))
    with pytest.raises(ValueError, match="no finished job"):
        runlog.critical_path(unfinished)
    with pytest.raises(ValueError, match="no finished job"):
        runlog.dependency_path(unfinished)


def test_latest_log_names_the_run_directory_when_there_is_none(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        runlog.latest_log(tmp_path)
    d = tmp_path / ".snakemake" / "log"
    d.mkdir(parents=True)
    (d / "2026-12-07T030000.000000.snakemake.log").write_text("a")
    (d / "2026-12-07T040000.000000.snakemake.log").write_text("b")
    assert runlog.latest_log(tmp_path).read_text() == "b"


def test_bfloat16_kernels_need_the_cpu_flags_and_no_isa_limit_below_them():
    has = bool(perf.BF16_FLAGS & perf.cpu_flags())
    assert perf.bf16_kernels({}) is has
    assert perf.bf16_kernels({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}) is has
    assert perf.bf16_kernels({"ONEDNN_MAX_CPU_ISA": "avx2"}) is False
    assert perf.bf16_kernels(perf.isa_environment("avx2", {})) is False


def test_interleaved_pairs_every_step_with_the_peak_and_fractions_use_best_and_means():
    calls = []
    peer_rates = iter([10.0, 20.0, 40.0, 20.0])  # GFLOP/s of the single matmuls, in order

    def peer(repeats):
        calls.append("peer")
        return 1e9 * next(peer_rates), 1.0  # one second each

    def step():
        calls.append("step")

    timing = perf.interleaved(step, 2, [peer], peer_repeats=2, warmup=1)
    assert calls == ["step", "step", "peer", "peer", "step", "peer", "peer"]
    assert timing["gflops"] == [[10.0, 20.0, 40.0, 20.0]]
    timing["step_s"] = [0.5, 0.25]  # 4 GFLOP per step: 8 and 16 GFLOP/s
    f = perf.peak_fractions(4e9, timing)
    assert f["gflops_best"] == pytest.approx(16.0) and f["peak_best"] == 40.0
    assert f["fraction_best"] == pytest.approx(0.4)
    assert f["gflops_mean"] == pytest.approx(8e9 / 0.75 / 1e9)
    assert f["peaks_mean"] == [pytest.approx(22.5)]
    assert f["fraction_mean"] == pytest.approx(8 / 0.75 / 22.5)


def test_auto_precision_respects_the_onednn_isa_limit(monkeypatch):
    """Under ONEDNN_MAX_CPU_ISA=AVX2 oneDNN has no bfloat16 convolution: `auto` must not pick
    bfloat16 there, whatever the CPU's flags say."""
    pytest.importorskip("tensorflow")
    from skydetect.clusters import inference

    monkeypatch.setattr(perf, "cpu_flags", lambda: set(perf.BF16_FLAGS) | {"avx2"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert inference.resolve_precision("auto") == "float32"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert inference.resolve_precision("auto") == "bfloat16"
