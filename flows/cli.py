"""The ``brandbatch`` command line (contract in DESIGN.md).

Exit codes: 0 success, 1 invalid input (or work that could not be done), 2 usage error, 3 a run
stopped by its budget (``--max-images``, ``--max-gpu-seconds``) with nothing failed: a planned stop,
the next run resumes.
Problem lines (``SHEET:ROW:COLUMN: message``) go to stdout for ``validate`` (they are its
output) and to stderr for ``run``; every other error goes to stderr.
"""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import os
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from plan.errors import InputError


# A command's objects are all garbage once it has returned: frozen at exit, the interpreter's last
# collections skip them instead of scanning every one (0.1-0.4 s of each command's exit, measured
# in bench/command_latency.py). Files and logs are closed by then (the with-blocks, logging's own
# exit handler), and what a cycle still holds the operating system releases with the process.
atexit.register(gc.freeze)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0],
                  pretty_exceptions_show_locals=False)
styles_app = typer.Typer(no_args_is_help=True, help="The style library: list, show, diff.")
app.add_typer(styles_app, name="styles")
placements_app = typer.Typer(no_args_is_help=True, help="Placement presets: list, show (with source and date checked).")
app.add_typer(placements_app, name="placements")

StylesOpt = Annotated[str | None, typer.Option("--styles", help="Style library folder (default: ./styles, "
                                                "else $BRANDBATCH_STYLES, else the bundled styles).")]
OutOpt = Annotated[str, typer.Option("--out", help="Output folder or s3://bucket/prefix.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also show Prefect's and brandbatch's log "
                                          "records on stderr (they always go to the log file under --out).")]
WaitOpt = Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another run or export of the "
                                        "campaign to end (default: refuse at once).")]


def _fail(problems: list, *, to_stdout: bool = False) -> None:
    for problem in problems:
        typer.echo(str(problem), err=not to_stdout)


@app.callback()
def _check_settings() -> None:
    """Every BRANDBATCH_* variable is checked before any command runs (a bad value: exit 1)."""
    from settings import SettingsError, load_settings, unknown_variables

    try:
        load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    for line in unknown_variables():
        typer.echo(f"warning: {line}", err=True)


def _prefect_home() -> None:
    """Prefect's local database cannot be created in a folder that is missing (e.g. a fresh
    PREFECT_HOME=.cache/prefect): make it first."""
    Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser().mkdir(parents=True, exist_ok=True)


def _manifest(out: str, campaign: str) -> dict[str, dict]:
    """The campaign's manifest rows by path ({} when there is none or it cannot be read: the
    command itself then says why)."""
    from exports.manifest import read_manifest
    from store import StoreError, open_store

    try:
        return read_manifest(open_store(out), campaign)
    except (StoreError, ValueError, OSError):
        return {}


def _withdrawn(out: str, campaign: str, before: dict[str, dict]) -> None:
    from exports.manifest import withdrawal_note

    if before and (note := withdrawal_note(before, _manifest(out, campaign))):
        typer.echo(note, err=True)


def _budget_count(waiting: list) -> str:
    return f", {len(waiting)} left for the next run by the budget" if waiting else ""


def _rewritten(counts: dict[str, int]) -> str:
    """`` (3 written; copy changed: 2, new file: 1)``: how many files were written, then each
    reason (a label, so it reads the same for 1 file or 30) with its count; "" when none was."""
    if not counts:
        return ""
    return f" ({sum(counts.values())} written; " + ", ".join(f"{why}: {n}" for why, n in counts.items()) + ")"


def _formats(text: str) -> list[str]:
    """``--formats``, checked against what the export stage can write (``jpg`` is ``jpeg``)."""
    from exports.stage import run_formats

    try:
        return run_formats(text.split(","))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--formats") from None


@app.command()
def validate(
    sheet: Annotated[Path, typer.Argument(help="Campaign sheet (.csv or .xlsx).")],
    styles: StylesOpt = None,
    allow_draft: Annotated[bool, typer.Option("--allow-draft", help="Accept draft styles.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="Check the rows as `run --model NAME` would "
                                              "render them (the model's family must be the style's).")] = None,
) -> None:
    """Validate a sheet and the styles it references; render nothing."""
    from exports.overlay import sheet_text_problems
    from exports.assemble import plan_settings
    from plan.planner import plan_campaign
    from plan.sheet import read_sheet

    try:
        settings, _ = plan_settings(styles, allow_draft=allow_draft, model=model)
        plan = plan_campaign(read_sheet(sheet), settings)
        plan.problems.extend(sheet_text_problems(plan, settings.styles_dir))  # glyphs no font has
    except InputError as exc:
        _fail(exc.problems, to_stdout=True)
        raise typer.Exit(1) from None
    _fail(plan.problems, to_stdout=True)
    typer.echo(f"{len(plan.rows)} valid rows, {len(plan.problems)} problems, {len(plan.jobs)} render jobs",
               err=True)
    raise typer.Exit(1 if plan.problems else 0)


@app.command()
def run(
    sheet: Annotated[Path, typer.Argument(help="Campaign sheet (.csv or .xlsx).")],
    out: OutOpt = "out",
    model: Annotated[str | None, typer.Option("--model", help="Render every job with this model: "
                                              "a folder, a built-in tiny id, or HF_ID@COMMIT.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Plan at most N valid rows.")] = None,
    styles: StylesOpt = None,
    allow_draft: Annotated[bool, typer.Option("--allow-draft", help="Accept draft styles.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=64, help="Images per pipeline call.")] = 4,
    formats: Annotated[str, typer.Option("--formats", help="Comma list of webp, avif, jpeg (or jpg), "
                                         "png, upload (the placement's accepted JPEG/PNG).")] = "webp,avif,upload",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
    max_images: Annotated[int | None, typer.Option("--max-images", min=0, help="Budget: render at most N new "
                                                   "images this run (the rest wait for the next run).")] = None,
    max_gpu_seconds: Annotated[float | None, typer.Option("--max-gpu-seconds", min=0, help="Budget: start no "
                                                          "new batch after this much render time.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Render only the campaign's dead letters "
                                               "(jobs that failed in earlier runs); exit 1 if any still fail.")] = False,
    wait: WaitOpt = 0.0,
    verbose: VerboseOpt = False,
) -> None:
    """Plan, render, check, queue for review and export what is approved. Reruns resume.

    Without a Prefect server configured (PREFECT_API_URL) the flow runs in this process unrecorded;
    with one, Prefect records the flow run and its artifacts."""
    chosen = _formats(formats)
    _prefect_home()
    from exports.credentials import CredentialError
    from flows.batch import campaign_batch
    from flows.runtime import command_log, prefect_server, run_flow
    from plan.sheet import campaign_name
    from review.queue import ReviewError
    from flows.signals import Interrupted, end_children, interruptible, mark_interrupted
    from store import StoreError, open_store
    from store.documents import DocumentError
    from store.keys import dead_letters_key
    from store.locks import campaign_lock

    if prefect_server():  # recorded as a campaign_batch flow run: Prefect set up before command_log
        import flows.campaign  # noqa: F401
    started = dt.datetime.now(dt.UTC)
    try:
        with interruptible(), campaign_lock(open_store(out), campaign_name(sheet), wait=wait), \
                command_log(out, campaign_name(sheet), "run", verbose=verbose):
            published = _manifest(out, campaign_name(sheet))
            summary = run_flow("flows.campaign:campaign_batch", campaign_batch, sheet=str(sheet), out=out,
                               model=model, limit=limit, styles=styles, allow_draft=allow_draft,
                               batch_size=batch_size, formats=chosen, progress=progress, max_images=max_images,
                               max_gpu_seconds=max_gpu_seconds, retry_failed=retry_failed, lock_wait=wait)
    except Interrupted as exc:  # SIGTERM / SIGINT: nothing of ours may outlive the run
        ended = end_children()
        where = mark_interrupted(open_store(out), campaign_name(sheet), exc.name, started, ended)
        typer.echo(f"run of {campaign_name(sheet)} interrupted by {exc.name}: ended {len(ended)} child processes, "
                   f"marked in {where}; rerun to resume", err=True)
        raise typer.Exit(1) from None
    except InputError as exc:
        _fail(exc.problems)
        raise typer.Exit(1) from None
    except (CredentialError, DocumentError, ReviewError, StoreError) as exc:  # StoreError: disk full, S3 unreachable; a rerun resumes
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    _fail(summary.problems)
    failed = [f for f in summary.failed if f["reason"] != "budget"]
    waiting = [f for f in summary.failed if f["reason"] == "budget"]  # a planned stop, not a failure
    for failure in failed:
        typer.echo(f"render failed: job {failure['job_key'][:12]} ({failure['reason']}): {failure['message']}",
                   err=True)
    for line in summary.qa_errors + summary.export_failures:
        typer.echo(line, err=True)
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(summary.verdicts.items())) or "none"
    rerolls = f", {summary.rerolled} reroll renders" if summary.rerolled else ""
    typer.echo(f"campaign {summary.campaign}: {summary.jobs} render jobs ({summary.rendered} rendered, "
               f"{summary.cached} already there, {len(failed)} failed{_budget_count(waiting)}{rerolls}); "
               f"QA of renders: {verdicts}; "
               f"{summary.queued} variants waiting for review; {summary.exported} export files"
               f"{_rewritten(summary.rewritten)} ({len(summary.export_failures)} export failures)")
    for line in summary.upscale_warnings:
        typer.echo(f"warning: {line}", err=True)
    _withdrawn(out, summary.campaign, published)
    if (letters := summary.dead_letters - len(waiting)) > 0:  # jobs the budget left wait: not failures
        typer.echo(f"dead letters: {letters} jobs failed and have not rendered since "
                   f"({dead_letters_key(summary.campaign)}); retry them alone with --retry-failed")
    if summary.held:
        typer.echo(f"held for review: {summary.held} export files whose text or logo would be illegible or whose CTA "
                   "does not fit (status 'review' with the reason in the manifest)")
    if summary.credential:
        typer.echo(summary.credential)
    typer.echo(f"manifest: {summary.manifest}")
    typer.echo(f"report:   {summary.report}")
    if waiting:
        typer.echo(f"stopped by the budget: {len(waiting)} render jobs were not started and wait for the next run "
                   f"({waiting[0]['message'].split(' and ', 1)[0].removeprefix('campaign budget reached: ')}); "
                   f"rerun, with a larger budget if needed, to render them")
    if summary.problems or failed or summary.qa_errors or summary.export_failures:
        raise typer.Exit(1)
    raise typer.Exit(0)  # a budget stop is the planned outcome the user asked for (DESIGN: 0/1/2)


@app.command()
def review(
    out: OutOpt = "out",
    host: Annotated[str, typer.Option("--host", help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8765,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the review queue from its decision log "
                                          "(after it was lost or damaged), write back what the log lacks, "
                                          "then exit.")] = False,
) -> None:
    """Serve the designers' review queue (approve / reject / reroll; "publish" resumes the run
    waiting for the review, else exports; a reroll starts the campaign's flow)."""
    _prefect_home()
    from flows.reroll import Reroller
    from flows.review_wait import publisher
    from review.app import listen, open_url, serve
    from review.queue import ReviewError
    from store import StoreError

    if rebuild:
        from review.rebuild import rebuild_queue

        try:
            report = rebuild_queue(out)
        except (ReviewError, StoreError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        for line in report.lines():
            typer.echo(line)
        return
    try:
        with listen(out, host, port) as sock:
            serve(out, sock, publish=publisher(out), rerender=Reroller(out),
                  ready=lambda: typer.echo(f"review queue: open {open_url(host, port)} and log in with your "
                                           "reviewer token (BRANDBATCH_REVIEWER_TOKENS or "
                                           "BRANDBATCH_REVIEWERS_FILE); Ctrl-C stops"))
    except ReviewError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


@app.command()
def export(
    campaign: Annotated[str, typer.Argument(help="Campaign name (the sheet's file name without extension).")],
    out: OutOpt = "out",
    formats: Annotated[str, typer.Option("--formats", help="Comma list of webp, avif, jpeg (or jpg), png, upload.")] = "webp,avif,upload",
    wait: WaitOpt = 0.0,
    verbose: VerboseOpt = False,
) -> None:
    """Export every approved, not yet exported asset of a campaign; rewrite the files whose
    inputs changed since (copy, logo, overlay style, placement, render, encoder)."""
    from plan.names import name_problem

    if problem := name_problem(campaign):
        raise typer.BadParameter(problem, param_hint="CAMPAIGN")
    chosen = _formats(formats)
    from exports.assemble import export_approved, missing_campaign, plan_settings
    from exports.credentials import CredentialError
    from qa.report import credential_note
    from exports.stage import rewrite_counts
    from flows.runtime import command_log, prefect_server
    from qa.report import upscale_warnings
    from review.campaign_page import rebuild_report
    from review.queue import ReviewError, ReviewQueue
    from store import StoreError, open_store
    from store.documents import DocumentError
    from store.locks import campaign_lock

    try:
        if missing := missing_campaign(open_store(out), out, campaign):
            typer.echo(missing, err=True)
            raise typer.Exit(1)
        if prefect_server():  # recorded as an export_campaign flow run
            _prefect_home()
            from flows.export import export_campaign
        try:
            settings, placements = plan_settings()
        except InputError as exc:  # the styles folder or the placements file
            _fail(exc.problems)
            raise typer.Exit(1) from None
        with campaign_lock(open_store(out), campaign, wait=wait), \
                command_log(out, campaign, "export", verbose=verbose), \
                closing(ReviewQueue.for_out(out)) as queue:  # the lock: not while a run of it writes
            queue.verify(campaign)  # lost review state stops the export before any work
            published = _manifest(out, campaign)
            if prefect_server():
                rows = export_campaign(campaign, out=out, formats=chosen, lock_wait=wait)
            else:  # the flow's work, in this process without a server
                rows = export_approved(campaign, queue, open_store(out), placements, chosen, settings.styles_dir)
                rebuild_report(open_store(out), queue, campaign)
    except (CredentialError, DocumentError, FileNotFoundError, ReviewError, StoreError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    from exports.stage import export_failure_lines

    for row in rows:
        if row.get("status") == "review":
            typer.echo(f"held for review: {row['path']}: {row['error']}", err=True)
        elif row.get("status") == "rejected":
            typer.echo(f"not shipped: {row['path']}: {row['error']}", err=True)
    failures = export_failure_lines(rows, placements, chosen)
    for line in failures:
        typer.echo(line, err=True)
    exported = sum(1 for r in rows if r.get("status") == "exported")
    for line in upscale_warnings(rows):
        typer.echo(f"warning: {line}", err=True)
    _withdrawn(out, campaign, published)
    held = sum(1 for r in rows if r.get("status") == "review")
    typer.echo(f"campaign {campaign}: {exported} export files written or current{_rewritten(rewrite_counts(rows))}, "
               f"{held} export files held for review, {len(failures)} export failures")
    if credential_note(rows):
        typer.echo(credential_note(rows))
    raise typer.Exit(1 if failures else 0)


@styles_app.command("list")
def styles_list(styles: StylesOpt = None) -> None:
    """Every style and version with its status."""
    library = _library(styles)
    for name in library.names():
        for version in library.versions(name):
            try:
                style = library.get(name, version)
            except InputError as exc:
                typer.echo(f"{name}@{version}\tINVALID\t{exc.problems[0]}")
                continue
            extra = f" (deprecated {style.deprecated_on})" if style.deprecated_on else ""
            typer.echo(f"{style.ref}\t{style.status}{extra}\t{style.model.id}\t{style.owner}")


def _library(styles: str | None):
    """The style library of ``--styles``; exit 1 naming the folder when it does not exist."""
    from exports.assemble import resolve_paths, styles_dir
    from plan.styles import StyleLibrary

    try:
        return StyleLibrary(styles_dir(resolve_paths(styles)))
    except InputError as exc:
        _fail(exc.problems)
        raise typer.Exit(1) from None


def _load(ref: str, styles: str | None):
    from plan.styles import parse_style_ref

    library = _library(styles)
    name, _, version = ref.partition("@")
    try:
        if version:
            name, number = parse_style_ref(ref)
        else:
            versions = library.versions(name)
            if not versions:
                raise ValueError(f"unknown style {name!r}; known: {', '.join(library.names()) or 'none'}")
            number = versions[-1]
        if number not in library.versions(name):
            raise ValueError(f"style {name!r} has no version {number}; versions: "
                             f"{', '.join(map(str, library.versions(name))) or 'none'}")
        return library.get(name, number)
    except ValueError as exc:  # InputError is a ValueError too
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


@styles_app.command("show")
def styles_show(ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: newest).")],
                styles: StylesOpt = None) -> None:
    """A style version, validated, as YAML."""
    import yaml

    style = _load(ref, styles)
    typer.echo(yaml.safe_dump(style.model_dump(mode="json"), sort_keys=False, allow_unicode=True), nl=False)


@styles_app.command("diff")
def styles_diff(a: Annotated[str, typer.Argument(help="NAME@A")], b: Annotated[str, typer.Argument(help="NAME@B")],
                styles: StylesOpt = None) -> None:
    """Keys that differ between two style versions (a unified diff of their YAML)."""
    import difflib

    import yaml

    left, right = (_load(ref, styles) for ref in (a, b))
    dump = [yaml.safe_dump(s.model_dump(mode="json"), sort_keys=True, allow_unicode=True).splitlines(keepends=True)
            for s in (left, right)]
    diff = "".join(difflib.unified_diff(*dump, fromfile=left.ref, tofile=right.ref))
    typer.echo(diff or f"{left.ref} and {right.ref} are identical", nl=not diff)


@app.command()
def verify(paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Export files, or folders of them.")]
           ) -> None:
    """Read and validate the Content Credentials (C2PA) of export files; exit 1 if any file has
    none or an invalid one. A development credential is valid but not trusted, and says so."""
    from exports.provenance import verify_paths

    results = verify_paths(paths)
    for path, check in results:
        typer.echo(f"{path}: {check.describe()}")
    bad = sum(not check.valid for _, check in results)
    typer.echo(f"{len(results) - bad} valid, {bad} invalid or missing", err=True)
    raise typer.Exit(1 if bad else 0)


def _placements() -> dict:
    """The bundled presets with $BRANDBATCH_PLACEMENTS merged over them."""
    from exports.placements import load_placements
    from exports.assemble import resolve_paths

    try:
        return load_placements(resolve_paths().placements_file)
    except InputError as exc:
        _fail(exc.problems)
        raise typer.Exit(1) from None


@placements_app.command("list")
def placements_list(platform: Annotated[str | None, typer.Option(
        "--platform", help="Only this platform: meta, google, iab, tiktok, linkedin, pinterest, x, snapchat, "
                           "amazon, or a part of the platform's name.")] = None) -> None:
    """Every preset: id, size, byte cap, upload formats, date checked, platform (tab-separated)."""
    from exports.placements import select, summary_line

    try:
        chosen = select(_placements(), platform)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    for placement in chosen:
        typer.echo(summary_line(placement))


@placements_app.command("show")
def placements_show(placement_id: Annotated[str, typer.Argument(metavar="ID", help="A placement id.")]) -> None:
    """One preset with every field, its source and the date it was checked."""
    from exports.placements import describe, unknown_placement

    placements = _placements()
    if placement_id not in placements:
        typer.echo(unknown_placement(placement_id, placements), err=True)
        raise typer.Exit(1)
    typer.echo(describe(placements[placement_id]), nl=False)


if __name__ == "__main__":  # pragma: no cover - `python -m flows.cli`
    app()
