"""A Snakemake run's jobs from its log, and the critical path: the chain of jobs that set the
wall time.

Snakemake (7-9) logs every job as a block opened by a time stamp (``[Mon Dec  7 02:58:08
2026]``), ``rule <name>:`` or ``localrule <name>:`` and indented ``input:``, ``output:``,
``jobid:`` and ``wildcards:`` lines, and its end as a time stamp followed by ``Finished jobid:
<id> (Rule: <name>)`` (Snakemake 9) or ``Finished job <id>.`` (older). The same lines are in
``.snakemake/log/<date>.snakemake.log`` and on Snakemake's standard error. Times are to the
second.

:func:`critical_path` walks back from the job that ended last: to the job whose output it
waited for (the input that was ready last), or, where it started later than all its inputs
were ready (the cores were busy), to the job that ended last before it started (the one that
freed its cores).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?(?:checkpoint|rule) (\S+):$")
_KEY = re.compile(r"^\s+(input|output|jobid|wildcards): (.*)$")
_FINISHED = re.compile(r"^Finished (?:jobid: (\d+)|job (\d+)\.)")


@dataclass
class Job:
    jobid: int
    rule: str
    start: datetime
    end: datetime | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    wildcards: str = ""

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds() if self.end else float("nan")

    @property
    def label(self) -> str:
        return f"{self.rule} ({self.wildcards})" if self.wildcards else self.rule


def _files(value: str) -> list[str]:
    return [f.strip() for f in value.split(",") if f.strip()]


def parse_jobs(text: str) -> dict[int, Job]:
    """The jobs of a Snakemake log (``text``) by job id; a job that never finished has
    ``end`` None. Raises ValueError if the text holds no job."""
    jobs: dict[int, Job] = {}
    stamp: datetime | None = None  # the last time stamp
    stamp_of_block: datetime | None = None  # the one before the open job block
    current: dict | None = None  # the open job block's keys

    def close():
        if current and "jobid" in current and stamp_of_block is not None:
            jid = int(current["jobid"])
            jobs[jid] = Job(
                jid,
                current["rule"],
                stamp_of_block,
                inputs=_files(current.get("input", "")),
                outputs=_files(current.get("output", "")),
                wildcards=current.get("wildcards", ""),
            )

    for line in text.splitlines():
        m = _STAMP.match(line.strip())
        if m:
            close()
            current = None
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        m = _RULE.match(line)
        if m:
            close()
            current, stamp_of_block = {"rule": m.group(1)}, stamp
            continue
        m = _KEY.match(line)
        if m and current is not None:
            current[m.group(1)] = m.group(2).strip()
            continue
        m = _FINISHED.match(line)
        if m:
            close()
            current = None
            jid = int(m.group(1) or m.group(2))
            if jid in jobs and stamp is not None:
                jobs[jid].end = stamp
        elif current is not None and line and not line.startswith(" "):
            close()
            current = None
    close()
    if not jobs:
        raise ValueError("no Snakemake job found in the log (no 'rule <name>:' block)")
    return jobs


def critical_path(jobs: dict[int, Job], slack_s: float = 1.0) -> list[dict]:
    """The chain of jobs that set the wall time, first to last: per job its ``job``, its
    ``start`` and ``end`` in seconds from the run's first start, its ``seconds``, and
    ``after``: ``start`` (the run's first job, or it started with the run), ``input`` (it
    started when the job before it wrote its last input) or ``cores`` (its inputs were ready
    ``waited_s`` seconds earlier; it started when the job before it ended and freed cores).
    ``slack_s`` absorbs the log's one-second resolution."""
    done = {j: job for j, job in jobs.items() if job.end is not None}
    if not done:
        raise ValueError("no finished job in the log")
    t0 = min(job.start for job in jobs.values())
    producer = {f: j for j, job in done.items() for f in job.outputs}
    cur = max(done.values(), key=lambda job: (job.end, job.start))
    chain = []
    seen = set()
    while cur is not None and cur.jobid not in seen:
        seen.add(cur.jobid)
        deps = [done[producer[f]] for f in cur.inputs if f in producer and producer[f] != cur.jobid]
        ready = max((d.end for d in deps), default=t0)
        waited = (cur.start - ready).total_seconds()
        row = {
            "job": cur,
            "start": (cur.start - t0).total_seconds(),
            "end": (cur.end - t0).total_seconds(),
            "seconds": cur.seconds,
            "waited_s": max(waited, 0.0),
        }
        nxt = None
        if waited > slack_s:  # inputs ready earlier: it waited for cores
            before = [j for j in done.values() if j.end <= cur.start and j.jobid not in seen]
            nxt = max(before, key=lambda j: (j.end, j.start), default=None)
            row["after"] = "cores" if nxt else "start"
        elif deps:
            nxt = max(deps, key=lambda d: (d.end, d.start))
            row["after"] = "input"
        else:
            row["after"] = "start"
        chain.append(row)
        cur = nxt
    return chain[::-1]


def latest_log(run_dir: str | Path) -> Path:
    """The newest ``.snakemake/log/*.snakemake.log`` of ``run_dir``."""
    logs = sorted(Path(run_dir).glob(".snakemake/log/*.snakemake.log"))
    if not logs:
        raise FileNotFoundError(f"{run_dir}: no .snakemake/log/*.snakemake.log")
    return logs[-1]


def dependency_path(jobs: dict[int, Job]) -> list[Job]:
    """The longest chain of finished jobs through their inputs alone, by measured seconds:
    the wall time the run would take with unlimited cores; first to last."""
    done = {j: job for j, job in jobs.items() if job.end is not None}
    if not done:
        raise ValueError("no finished job in the log")
    producer = {f: j for j, job in done.items() for f in job.outputs}
    best: dict[int, tuple[float, int | None]] = {}
    for job in sorted(done.values(), key=lambda j: (j.start, j.end)):  # inputs come first
        deps = {producer[f] for f in job.inputs if f in producer and producer[f] != job.jobid}
        prev = max((d for d in deps if d in best), key=lambda d: best[d][0], default=None)
        best[job.jobid] = (job.seconds + (best[prev][0] if prev is not None else 0.0), prev)
    cur: int | None = max(best, key=lambda j: (best[j][0], done[j].end))
    chain = []
    while cur is not None:
        chain.append(done[cur])
        cur = best[cur][1]
    return chain[::-1]


def _path_summary(chain: list[dict]) -> list[str]:
    by_rule: dict[str, list] = {}
    for r in chain:
        by_rule.setdefault(r["job"].rule, []).append(r["seconds"])
    wall = chain[-1]["end"] if chain else 0.0
    lines = [
        "| rule | jobs on the path | seconds | share of wall |",
        "| --- | ---: | ---: | ---: |",
    ]
    for rule, secs in sorted(by_rule.items(), key=lambda kv: -sum(kv[1])):
        share = sum(secs) / wall if wall else 0.0
        lines.append(f"| {rule} | {len(secs)} | {sum(secs):.0f} | {share:.0%} |")
    return lines


def critical_path_markdown(
    chain: list[dict], title: str = "Critical path", dependency: list[Job] | None = None
) -> list[str]:
    """Markdown lines: the chain's sums by rule, the chain through inputs alone
    (``dependency``, :func:`dependency_path`) and the whole chain as a table."""
    wall = chain[-1]["end"] if chain else 0.0
    busy = sum(r["seconds"] for r in chain)
    n_cores = sum(r["after"] == "cores" for r in chain)
    how = {
        "start": "first",
        "input": "its input was written by the job above",
        "cores": "inputs ready {w:.0f} s earlier; started when the job above freed cores",
    }
    lines = [
        f"## {title}",
        "",
        f"The chain of jobs that set the wall time ({wall:.0f} s from the first job's start "
        f"to the last job's end): {busy:.0f} s in these {len(chain)} jobs, "
        f"{wall - busy:.0f} s between them (scheduling). {n_cores} of them started only when "
        "the job before them on the chain freed cores (their inputs were ready earlier): "
        "where that is most of the chain, the cores were full and the wall time is set by the "
        "total work, not by one sequence. From the Snakemake log (one-second time stamps).",
        "",
        *_path_summary(chain),
    ]
    if dependency:
        total = sum(j.seconds for j in dependency)
        lines += [
            "",
            f"Through inputs alone (the wall time with unlimited cores): {total:.0f} s, "
            + " → ".join(f"{j.label} {j.seconds:.0f} s" for j in dependency),
        ]
    lines += [
        "",
        "<details><summary>The whole chain</summary>",
        "",
        "| job | start [s] | end [s] | seconds | share of wall | started |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in chain:
        share = r["seconds"] / wall if wall else 0.0
        lines.append(
            f"| {r['job'].label} | {r['start']:.0f} | {r['end']:.0f} | {r['seconds']:.0f} "
            f"| {share:.0%} | {how[r['after']].format(w=r['waited_s'])} |"
        )
    return [*lines, "", "</details>"]
