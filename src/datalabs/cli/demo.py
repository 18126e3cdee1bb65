"""`datalabs demo ...`: the edge demo (issue 18).

`datalabs demo edge` runs it through a platform's own triggers (demo/edge.py says what it sets up and how
its retention follows the recorder's runs); the rest works on this machine, without the server.

`datalabs demo station` is the edge demo's synthetic station (issue 18): it writes a low-fidelity stream
and the high-fidelity data beside it into a folder (register it as a data volume to run the
`event-recorder` pipeline on it), and, with `--age-out`, does the station's retention: the event
windows the recorder kept are copied into the folder's `kept/` (never aged out) and the rest of the
high-fidelity data older than `--retention` is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from datalabs.cli.output import console, fail

app = typer.Typer(
    help="Demonstrations: the edge demo through the platform's triggers, and its synthetic station.",
    no_args_is_help=True,
)


def _start(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--start {value!r}: expected an ISO 8601 time such as 2026-12-04T01:00:00Z")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _retain(out: Path, retention: float, keep_from: list[Path]) -> None:
    from datalabs.demo import retention as ret

    report = ret.keep(out, keep_from) if keep_from else ret.Report()
    ret.age_out(out, retention, report)
    clock = report.clock.strftime("%Y-%m-%d %H:%M") if report.clock else "no chunks yet"
    console.print(
        f"kept {len(report.kept)} new window(s); aged out {len(report.deleted)} high-fidelity chunk(s), "
        f"{len(report.remaining)} within {retention:g} s of the station's clock ({clock})"
    )
    for line in report.skipped:
        console.print(f"  left alone: {line}")


@app.command("station")
def station(
    out: Path = typer.Option(..., "--out", help="Folder to write into (made if missing), e.g. a volume's."),
    name: str = typer.Option("DEMO01", "--station", help="Station name (3-12 capitals or digits)."),
    minutes: int = typer.Option(30, help="Simulated minutes to write (with --live: the events' period)."),
    events: int = typer.Option(3, help="Events injected per --minutes."),
    seed: int = typer.Option(0, help="Seed: the same seed gives the same data and events."),
    speed: float = typer.Option(
        60.0, help="Simulated seconds per second (60: a chunk a second; 0: no wait)."
    ),
    live: bool = typer.Option(False, "--live", help="Keep writing until interrupted (Ctrl-C)."),
    start: str | None = typer.Option(None, help="Simulated start time, ISO 8601 (default: now)."),
    age_out: bool = typer.Option(
        False, "--age-out", help="Do the retention instead of writing: keep windows, delete old chunks."
    ),
    retention: float | None = typer.Option(
        None,
        help="Seconds of high-fidelity data to keep (--age-out: default 600; --live: age out as it goes).",
    ),
    keep_from: list[Path] = typer.Option(  # noqa: B008 (Typer's way)
        [],
        "--keep-from",
        help="Folder where the recorder's windows are (e.g. its runs' outputs); repeatable.",
    ),
) -> None:
    """A synthetic station: 1 Hz IF power (CSV) and 100 Hz samples (NetCDF), one file each per minute."""
    from datalabs.demo import station as st
    from datalabs.errors import DatalabsError

    try:
        if age_out:
            _retain(out, 600.0 if retention is None else retention, keep_from)
            return

        def written(chunk: st.Chunk) -> None:
            console.print(f"{chunk.start:%H:%M} {st.LOWFI}/{chunk.lowfi}  {st.HIFI}/{chunk.hifi}")
            if live and retention is not None:
                _retain(out, retention, keep_from)

        injected = st.run(
            out,
            station=name,
            start=_start(start),
            minutes=minutes,
            events=events,
            seed=seed,
            speed=speed,
            live=live,
            on_chunk=written,
        )
    except DatalabsError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        console.print("stopped")
        return
    console.print(f"{minutes} minute(s) written to {out}; events injected:")
    for event in injected:
        console.print(f"  {event.time:%Y-%m-%dT%H:%M:%S.%f}Z  +{event.gain_db:.1f} dB")


def _said(step) -> str:
    if step.unreachable:
        return f"  platform: {step.unreachable} (nothing aged out; again at the next chunk)"
    r = step.report
    parts = [f"{len(step.ended)} recorder run(s) ended", f"kept {len(step.kept)} new window(s)"]
    parts.append(f"aged out {len(r.deleted)} high-fidelity chunk(s)")
    if r.waiting:
        parts.append(f"{len(r.waiting)} waiting for the recorder")
    if step.harvest:
        parts.append(f"explorer: harvest {step.harvest}")
    return "  " + "; ".join(parts) + "".join(f"\n  not kept: {why}" for why in step.refused)


@app.command("edge")
def edge(
    out: Path = typer.Option(
        ..., "--out", help="The station folder (made if missing), on the platform's host."
    ),
    name: str = typer.Option("DEMO01", "--station", help="Station name (3-12 capitals or digits)."),
    minutes: int = typer.Option(10, help="Simulated minutes to write (with --live: the events' period)."),
    events: int = typer.Option(3, help="Events injected per --minutes."),
    seed: int = typer.Option(0, help="Seed: the same seed gives the same data and events."),
    speed: float = typer.Option(30.0, help="Simulated seconds per second (0: no wait)."),
    live: bool = typer.Option(False, "--live", help="Keep writing until interrupted (Ctrl-C)."),
    start: str | None = typer.Option(None, help="Simulated start time, ISO 8601 (default: now)."),
    retention: float = typer.Option(
        120.0, help="Seconds (simulated) of high-fidelity data kept before it ages out (once recorded)."
    ),
    margin: float = typer.Option(10.0, help="Seconds of high-fidelity data kept on each side of an event."),
    setup_only: bool = typer.Option(False, "--setup-only", help="Set up (volumes, trigger) and stop."),
    wait: float = typer.Option(600.0, help="Seconds to wait, once written, for the last runs and harvest."),
) -> None:
    """The edge flow through the platform's triggers: set up the station's volumes and a new-data trigger
    running event-recorder on each low-fi chunk, then write the station, keep the windows the runs find,
    age the rest out once recorded, and index the windows for the explorer (collection station-events).
    Needs an administrator's `datalabs login` on the platform whose host holds --out."""
    import time

    from datalabs.client import ApiError, Client, NotConfigured
    from datalabs.demo import edge as ed
    from datalabs.demo import station as st
    from datalabs.errors import DatalabsError

    try:
        with Client(timeout=60) as client:
            the_edge, lines = ed.setup(client, out, name, margin)
            console.print("[bold]Set up[/]", highlight=False)
            for line in lines:
                console.print(f"  {line}", highlight=False)
            console.print("[bold]Watch it[/]", highlight=False)
            for line in ed.watch_here(client.url):
                console.print(f"  {line}", highlight=False)
            if setup_only:
                return
            follower = ed.Follower(client, the_edge, retention)
            written: list[str] = []
            aged: list[str] = []

            def chunk_done(chunk: st.Chunk) -> None:
                written.append(chunk.lowfi)
                console.print(f"{chunk.start:%H:%M} {st.LOWFI}/{chunk.lowfi}", highlight=False)
                step = follower.step()
                aged.extend(step.report.deleted)
                console.print(_said(step), highlight=False)

            injected = st.run(
                the_edge.out, station=name, start=_start(start), minutes=minutes, events=events, seed=seed,
                speed=speed, live=live, on_chunk=chunk_done,
            )  # fmt: skip
            deadline = time.monotonic() + wait
            while True:  # the last runs end; what they kept is taken, the rest ages out
                step = follower.step(final=True)
                aged.extend(step.report.deleted)
                if not step.unreachable and set(written) <= step.ended:
                    break
                if step.kept or step.report.deleted:
                    console.print(_said(step), highlight=False)
                if time.monotonic() > deadline:
                    left = len(set(written) - step.ended)
                    fail(
                        f"after {wait:g} s, {left} chunk(s) not recorded yet: their high-fidelity data stays"
                    )
                time.sleep(1.0)
            console.print(_said(step), highlight=False)
            if not follower.indexed(timeout=min(wait, 300.0)):
                fail("the kept windows are not indexed yet: see the data volume station-events' harvest")
    except NotConfigured as exc:
        fail(str(exc))
    except ApiError as exc:
        fail(exc.message)
    except DatalabsError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        console.print("stopped")
        return
    kept = sorted(p.name for p in (the_edge.out / st.KEPT).iterdir() if not p.name.startswith("."))
    console.print(f"{len(written)} minute(s) written; events injected:")
    for event in injected:
        console.print(f"  {event.time:%Y-%m-%dT%H:%M:%S.%f}Z  +{event.gain_db:.1f} dB")
    console.print(f"{len(kept)} window(s) kept in {the_edge.out / st.KEPT}:")
    for k in kept:
        console.print(f"  {k}")
    console.print(
        f"{len(aged)} high-fidelity chunk(s) aged out; {len(step.report.remaining)} within the last"
        f" {retention:g} s stay until they are older"
    )
