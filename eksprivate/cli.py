"""The command line: thin commands, and the one place errors become a red line and an exit code.

Exit codes: 0 success, 1 failure, 2 usage or configuration error, 130 interrupted. Heavy imports
(boto3, the engine, moto) happen inside the commands so `eksprivate --help` stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from eksprivate.errors import EksPrivateError, UsageError

if TYPE_CHECKING:
    from eksprivate.aws import Aws
    from eksprivate.config import Settings
    from eksprivate.engine import Outcome
    from eksprivate.permission_check import PermissionCheck
    from eksprivate.steps.base import Context
    from eksprivate.target import Options

app = typer.Typer(
    name="eksprivate",
    help="Build and tear down an Amazon EKS cluster whose nodes have no internet access.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold sessions and credentials
    add_completion=False,
    # Click's plain help: the rich panels print `<bool>` after every switch, and users then type
    # `--sandbox true`, which fails. Value options name their value with a metavar instead.
    rich_markup_mode=None,
)
sandbox_app = typer.Typer(help="The embedded AWS stand-in (moto on loopback, real-world timings).",
                          no_args_is_help=True, rich_markup_mode=None)
app.add_typer(sandbox_app, name="sandbox")
state_app = typer.Typer(help="Act on the state itself (move it between a file and S3).", no_args_is_help=True)
app.add_typer(state_app, name="state")

NameOpt = Annotated[str | None, typer.Option("--name", "-n", metavar="NAME",
                                             help="Cluster name (default: eksprivate).")]
RegionOpt = Annotated[str | None, typer.Option(
    "--region", "-r", metavar="REGION", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / the profile's).")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", metavar="PROFILE", help="AWS profile (SSO works).",
                                                envvar="AWS_PROFILE", show_envvar=False)]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE",
                                                help="TOML config file (docs/configuration.md).")]
StateOpt = Annotated[str | None, typer.Option(
    "--state", metavar="PATH",
    help="State file or s3://bucket/key (default: the config's `state`, else state/<name>-<region>.json).")]
SandboxOpt = Annotated[bool, typer.Option("--sandbox", help="Run against the embedded AWS stand-in, not AWS.")]
ScaleOpt = Annotated[float | None, typer.Option(
    "--time-scale", metavar="FACTOR", help="Sandbox only: real AWS durations x this factor (default 0.03).",
    min=0.0)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and API call counts.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", metavar="text|json", help="text or json.")]


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"eksprivate {version('eksprivate')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("eksprivate (not installed: no version recorded)")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", callback=_print_version, is_eager=True)] = False) -> None:
    """Build and tear down an Amazon EKS cluster whose nodes have no internet access."""


def main() -> None:
    import signal

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C: state saved, hint to rerun

    signal.signal(signal.SIGTERM, terminate)
    try:
        app()
    except SystemExit as done:
        _leave_now(done)
        raise


def _leave_now(done: SystemExit) -> None:
    """Exit without the interpreter's teardown of boto3's loaded models (0.1-0.2 s on every command).
    Safe once the command has returned: state saves are fsync'd and closed, the run lock is the kernel's,
    output is flushed here. Not while another non-daemon thread would be cut short, nor under a profiler,
    tracer or coverage, which write their results at the normal exit."""
    import threading

    if any(t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        return
    if sys.getprofile() is not None or sys.gettrace() is not None or "coverage" in sys.modules:
        return
    code = done.code
    if code is not None and not isinstance(code, int):
        return  # a message to print: the normal exit does that
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the normal exit reports nothing either
        return
    os._exit(code or 0)


@contextmanager
def boundary(debug: bool) -> Iterator[None]:
    """Every domain error becomes one red line and its exit code; no traceback unless --debug."""
    from eksprivate import ui

    try:
        yield
    except EksPrivateError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        ui.error(_spell(str(exc)))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        ui.error("interrupted; rerun the same command to resume")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if debug:
            raise
        ui.error(f"internal error: {type(exc).__name__}: {exc} — rerun with --debug and report it")
        raise typer.Exit(1) from None


def _options(name: str | None, region: str | None, profile: str | None, config: Path | None,
             state: str | None, sandbox: bool, time_scale: float | None = None, prune: bool = False) -> Options:
    from eksprivate.target import Options

    if time_scale is not None and not sandbox:
        raise UsageError("--time-scale only applies with --sandbox")
    from eksprivate import ui

    return Options(name=name, region=region, profile=None if sandbox else profile, config=config, state=state,
                   sandbox=sandbox, time_scale=time_scale, prune=prune, notify=lambda text: ui.info(_spell(text)))


def _program() -> str:
    """The program as the user invoked it (`eksprivate`, `.venv/bin/eksprivate`, `python3 -m eksprivate`),
    so every command we suggest can be pasted back as it is."""
    import shlex
    import shutil

    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "__main__.py" and Path(argv0).parent.name == "eksprivate":  # python -m eksprivate
        python = getattr(sys, "orig_argv", [sys.executable])[0] or "python3"
        return f"{shlex.quote(python)} -m eksprivate"
    if Path(argv0).name != "eksprivate":
        return "eksprivate"  # embedded (tests, another program's process)
    on_path = shutil.which("eksprivate")
    if os.sep not in argv0 or (on_path and os.path.realpath(on_path) == os.path.realpath(argv0)):
        return "eksprivate"
    return shlex.quote(argv0)


def _spell(text: str) -> str:
    """`eksprivate ...` in a message, spelled the way the user invoked the program."""
    program = _program()
    return text if program == "eksprivate" else text.replace("`eksprivate ", f"`{program} ")


def _again(verb: str, opts: Options) -> str:
    """`<program> <verb>` with the target flags the user gave that `verb` takes (verify has no --state: it
    reads no state), ready to paste."""
    import shlex

    takes = _flags_of(verb)
    words = [_program(), verb]
    for flag, value in (("--name", opts.name), ("--region", opts.region), ("--profile", opts.profile),
                        ("--config", opts.config), ("--state", opts.state)):
        if value is not None and flag in takes:
            words += [flag, shlex.quote(str(value))]
    if opts.sandbox and "--sandbox" in takes:
        words.append("--sandbox")
    return " ".join(words)


def _flags_of(verb: str) -> frozenset[str]:
    """The options the command `verb` declares (from its own definition, so a hint cannot name another)."""
    return _flags_by_verb()[verb]


@functools.cache  # typer builds the whole command tree from type hints: ~0.1 s, the same answer every time
def _flags_by_verb() -> dict[str, frozenset[str]]:
    commands = getattr(typer.main.get_command(app), "commands", {})
    return {verb: frozenset(flag for param in command.params for flag in getattr(param, "opts", []))
            for verb, command in commands.items()}


def _can_ask() -> bool:
    """Whether there is a person at a terminal to answer a question."""
    return sys.stdin.isatty()


def _header(verb: str, ctx: Context) -> str:
    """What a command works on, named before it does anything: cluster, region, account."""
    azs = f" ({', '.join(ctx.azs)})" if ctx.azs else ""
    return (f"eksprivate {verb}: cluster {ctx.name} in {ctx.region}{azs}, account {ctx.account}, "
            f"state {ctx.ledger.path}")


def _connect(opts: Options) -> tuple[Settings, Aws]:
    """Settings and an AWS connection, for the commands that work on a live cluster without state."""
    from eksprivate.target import connect, load_settings, resolve_region

    settings = load_settings(opts)
    aws, _ = connect(opts, resolve_region(settings, opts))
    return settings, aws


def _write_metrics(ctx: Context, verb: str, seconds: float) -> None:
    """EKSPRIVATE_METRICS=path: the run's makespan and API call counts, for benchmarks."""
    path = os.environ.get("EKSPRIVATE_METRICS")
    if not path:
        return
    log = ctx.aws.log
    Path(path).write_text(json.dumps({
        "verb": verb, "seconds": round(seconds, 3), "calls": log.total, "mutating": len(log.mutating),
        "mutating_calls": [f"{s}:{o}" for s, o in log.mutating], "by_operation": log.summary(),
    }, indent=2, sort_keys=True))


def _report_calls(ctx: Context, debug: bool) -> None:
    from eksprivate import ui

    if debug:
        ui.info(f"API calls: {ctx.aws.log.total} ({len(ctx.aws.log.mutating)} mutating)")


@app.command()
def up(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    state: StateOpt = None, sandbox: SandboxOpt = False, time_scale: ScaleOpt = None,
    prune: Annotated[bool, typer.Option("--prune", help="Also delete node groups/endpoints removed from the config.")]
    = False,
    yes: YesOpt = False, debug: DebugOpt = False,
) -> None:
    """Create the cluster, or converge it to the config. Rerun any time: it resumes and changes only what differs."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.engine import Engine
        from eksprivate.steps import build_graph
        from eksprivate.target import open_context

        opts = _options(name, region, profile, config, state, sandbox, time_scale, prune)
        started = time.monotonic()
        ctx = open_context(opts, mutate=True)
        ui.info(_header("up", ctx))
        for text in ctx.settings.warnings:
            ui.warn(text)
        with ctx.ledger.lock("up"):
            if ctx.ledger.input("availability_zones") != ctx.azs:
                ctx.ledger.set_input("availability_zones", ctx.azs)
            for zone in ctx.skipped_zones:
                ui.info(f"zone skipped: {zone}")
            steps = build_graph(ctx, orphans=True)  # without --prune, orphans are only reported as kept
            try:
                with ui.Progress("up", started=started) as progress:
                    outcomes = Engine(ctx, steps, progress).up()
            finally:
                _write_metrics(ctx, "up", time.monotonic() - started)
                _report_calls(ctx, debug)
        ui.print_outcomes(outcomes, "up", progress.elapsed)
        for outcome in outcomes:  # config differences `up` cannot apply (plan shows them with "!")
            for text in outcome.warnings:
                ui.warn(f"{outcome.title}: {text}")
        ui.info(f"cluster {ctx.name} is ACTIVE with a private API endpoint. Next: `{_again('status', opts)}`, "
                f"`{_again('verify', opts)}`; to reach the API from outside the VPC see docs/private-access.md")


@app.command()
def down(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    state: StateOpt = None, sandbox: SandboxOpt = False, time_scale: ScaleOpt = None, yes: YesOpt = False,
    delete_volumes: Annotated[bool, typer.Option(
        "--delete-volumes", help="Also delete the EBS volumes and EFS file systems Kubernetes made for the "
        "cluster's claims (they hold data: kept and listed otherwise).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Delete everything eksprivate made for the cluster (found from the state file, or by tags)."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.engine import Engine
        from eksprivate.steps import build_graph
        from eksprivate.target import open_context

        opts = _options(name, region, profile, config, state, sandbox, time_scale)
        started = time.monotonic()
        ctx = open_context(opts, mutate=True, need_azs=False)
        ctx.delete_volumes = delete_volumes
        if not yes and not _can_ask():
            raise UsageError("refusing to delete without confirmation: no terminal to ask on",
                             "pass --yes to delete non-interactively")
        ui.info(_header("down", ctx))
        asked = time.monotonic()
        if not yes and not typer.confirm(f"Delete EKS cluster {ctx.name} in {ctx.region} (account {ctx.account}) "
                                         "and everything eksprivate made for it?"):
            ui.info("cancelled; nothing deleted")  # the user's answer, not an error: exit 0
            return
        started += time.monotonic() - asked  # the timer counts eksprivate's time, not the time to answer
        with ctx.ledger.lock("down"):
            steps = build_graph(ctx, everything=True)
            try:
                with ui.Progress("down", started=started) as progress:
                    outcomes = Engine(ctx, steps, progress).down()
                kept = _kept_data(ctx, outcomes)
            finally:
                _write_metrics(ctx, "down", time.monotonic() - started)
                _report_calls(ctx, debug)
            ctx.ledger.remove_file()
        if all(o.phase == "absent" for o in outcomes):
            ui.info(f"nothing to delete: no resources of {ctx.name} in {ctx.region}")
        else:
            ui.print_outcomes(outcomes, "down", progress.elapsed)
        for line in kept:  # said last: what the user still pays for and may want
            ui.warn(line)


def _kept_data(ctx: Context, outcomes: list[Outcome]) -> list[str]:
    """Volumes and file systems hold data: `down` keeps them unless --delete-volumes, and says so last. The
    Kubernetes-leftovers step found them after the cluster was gone (no claim can add one since): its view,
    no second look."""
    from eksprivate.steps.k8s_leftovers import K8sLeftovers, kept_lines

    if ctx.delete_volumes:
        return []
    found = next((o.found for o in outcomes if o.key == K8sLeftovers.key and o.found), None)
    return [f"kept {line}, made by Kubernetes for {ctx.name}: `{_program()} down --delete-volumes` deletes it"
            for line in (kept_lines(found) if found else [])]


def _check_permissions(ctx: Context, opts: Options) -> PermissionCheck:
    """What of `eksprivate permissions`' policy the caller lacks (IAM's policy simulator)."""
    from eksprivate import permission_check, permissions
    from eksprivate.state_s3 import is_s3_url

    where = opts.state if opts.state is not None else ctx.settings.state
    s3_state = str(where) if where is not None and is_s3_url(str(where)) else None
    return permission_check.check(ctx, permissions.entries(permissions.sources_for(ctx, s3_state)))


@app.command()
def plan(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    state: StateOpt = None, sandbox: SandboxOpt = False,
    destroy: Annotated[bool, typer.Option("--destroy", help="Show what `down` would delete.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Show what `up --prune` would delete.")] = False,
    check_permissions: Annotated[bool, typer.Option(
        "--check-permissions", help="Also list the permissions you lack, asked of IAM's policy simulator "
        "(needs iam:SimulatePrincipalPolicy on yourself; says so when it cannot check).")] = False,
    output: OutputOpt = "text", debug: DebugOpt = False,
) -> None:
    """Show what `up` (or `down`, with --destroy) would do. Reads only; writes nothing."""
    with boundary(debug):
        from dataclasses import asdict

        from eksprivate import ui
        from eksprivate.cost import PLANNED_ACTIONS, cost_of
        from eksprivate.engine import Engine
        from eksprivate.steps import build_graph
        from eksprivate.target import describe_skipped_zones, describe_target, open_context

        _check_output(output)
        opts = _options(name, region, profile, config, state, sandbox, prune=prune)
        ctx = open_context(opts, mutate=False, need_azs=not destroy)
        ui.info(_header("plan" + (" --destroy" if destroy else ""), ctx))
        for text in ctx.settings.warnings:  # as `up` says them (an unversioned state bucket, a version, ...)
            ui.warn(text)
        steps = build_graph(ctx, everything=destroy, orphans=True)
        items = Engine(ctx, steps, _Quiet()).plan(destroy=destroy)
        unread = [i for i in items if i.action == "unknown"]
        # What the cluster costs once `up` has run (not for --destroy: that lists what goes away; nor when some
        # steps could not be read: a part would be priced as the whole).
        estimate = None if destroy or unread else cost_of(ctx, items, PLANNED_ACTIONS)
        checked = _check_permissions(ctx, opts) if check_permissions else None
        if output == "json":
            ui.print_json({**describe_target(ctx), "skipped_zones": describe_skipped_zones(ctx),
                           "destroy": destroy, "steps": [asdict(i) for i in items],
                           **({"cost": estimate.to_dict()} if estimate else {}),
                           **({"permissions": checked.to_dict()} if checked else {})})
        else:
            ui.print_plan(items, destroy)
            ui.print_skipped_zones(ctx.skipped_zones)
            if estimate:
                ui.print_cost(estimate, f"estimated cost of {ctx.name} after `up` ({ctx.region})")
            if checked:
                ui.out.print("\n".join(_spell(line) for line in checked.lines()), highlight=False, markup=False,
                             soft_wrap=True)
        _report_calls(ctx, debug)
        if unread:  # every step was listed; the ones marked "unknown" say why they could not be read
            raise EksPrivateError(f"plan could not read {len(unread)} of {len(items)} step(s) "
                                  f"({', '.join(i.key for i in unread[:3])}{', ...' if len(unread) > 3 else ''}): "
                                  "the plan above is incomplete", "fix what the unknown steps name, then rerun")


@app.command()
def status(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    state: StateOpt = None, sandbox: SandboxOpt = False, output: OutputOpt = "text", debug: DebugOpt = False,
) -> None:
    """Show each step with its resource IDs and live status."""
    with boundary(debug):
        from dataclasses import asdict

        from eksprivate import ui
        from eksprivate.cost import cost_of
        from eksprivate.engine import Engine
        from eksprivate.steps import build_graph
        from eksprivate.target import describe_target, open_context

        _check_output(output)
        opts = _options(name, region, profile, config, state, sandbox)
        ctx = open_context(opts, mutate=False, need_azs=False)
        items = Engine(ctx, build_graph(ctx, everything=True), _Quiet()).status()
        estimate = cost_of(ctx, items, ("exists",))
        from eksprivate.steps.upgrade import kubernetes_support

        support = kubernetes_support(ctx)  # the version's support window: WARN within 60 days of its end
        if output == "json":
            ui.print_json({**describe_target(ctx), "steps": [asdict(i) for i in items], "cost": estimate.to_dict(),
                           "kubernetes_support": {"status": support[0], "detail": support[1]} if support else None})
        else:
            ui.print_status(items, describe_target(ctx))
            ui.print_cost(estimate, f"estimated cost of what exists of {ctx.name} ({ctx.region})")
            if support:
                (ui.warn if support[0] == "WARN" else ui.info)(support[1])
        _report_calls(ctx, debug)


@app.command()
def verify(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    sandbox: SandboxOpt = False, output: OutputOpt = "text", debug: DebugOpt = False,
) -> None:
    """Audit any EKS cluster's private networking and security posture (exit 1 on any FAIL)."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.verify import render, run_checks

        _check_output(output)
        opts = _options(name, region, profile, config, None, sandbox)
        settings, aws = _connect(opts)
        report = run_checks(aws, settings.name, settings.endpoints)
        if output == "json":
            ui.print_json(report.to_dict())
        else:
            render(report, ui.out)
        if report.failed:
            raise typer.Exit(1)


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="cloudformation|terraform",
                                     help="What to write: a CloudFormation template or Terraform configuration.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR",
                                         help="Folder to write (must be new or empty unless --force).")],
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    state: StateOpt = None, sandbox: SandboxOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Replace what --output holds.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Write the cluster as CloudFormation or Terraform, with import ids, to adopt it (docs/export.md). Reads only."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.export import FORMATS, check_output, write_dir
        from eksprivate.export import export as run_export
        from eksprivate.target import open_context

        if fmt not in FORMATS:
            raise UsageError(f"--format {fmt!r}: use cloudformation or terraform")
        check_output(output, force)  # before any AWS call: nothing read, nothing written
        opts = _options(name, region, profile, config, state, sandbox)
        started = time.monotonic()
        ctx = open_context(opts, mutate=False)
        exported = run_export(ctx, fmt)  # a cluster that is not there: its one error line, nothing before it
        _write_metrics(ctx, "export", time.monotonic() - started)
        ui.info(_header(f"export --format {fmt}", ctx))
        write_dir(output, exported.files, force)
        inventory = exported.inventory
        ui.info(f"wrote {len(inventory.resources)} resources of {ctx.name} to {output}/ "
                f"({', '.join(sorted(exported.files))}); next: read {output}/README.md")
        for line in inventory.differences:
            ui.warn(f"differs from the config, exported as it is in AWS: {line}")
        _report_calls(ctx, debug)


@app.command()
def kubeconfig(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    sandbox: SandboxOpt = False,
    path: Annotated[Path | None, typer.Option(
        "--kubeconfig", metavar="PATH",
        help="Default: $KUBECONFIG or ~/.kube/config; with --sandbox state/kubeconfig-<name>.yaml.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Merge a context for the cluster into your kubeconfig (keeps every other context) and make it current.
    With --sandbox: a kubeconfig file under state/ (or --kubeconfig PATH), never your own."""
    with boundary(debug):
        import shlex

        from eksprivate import ui
        from eksprivate.kube import cluster_entry, current_context, kubeconfig_path, merge_context

        opts = _options(name, region, profile, config, None, sandbox)
        settings, aws = _connect(opts)
        # The sandbox's cluster is not a real one: never put it in the user's kubeconfig (nor $KUBECONFIG's).
        target = path.expanduser() if path else (opts.state_dir / f"kubeconfig-{settings.name}.yaml" if sandbox
                                                 else kubeconfig_path(None))
        before = current_context(target)
        context = merge_context(target, cluster_entry(aws, settings.name), profile=opts.profile)
        ui.info(f"context {context} written to {target}")
        if before and before != context:  # like `aws eks update-kubeconfig`, but said
            ui.info(f"it is now the current context; it was {before} (back: kubectl config use-context {before})")
        elif not before:
            ui.info("it is now the current context")
        if sandbox:
            ui.info(f"use it with: export KUBECONFIG={shlex.quote(str(target.resolve()))}")
        else:
            ui.info(_spell("The API is private: from outside the VPC see docs/private-access.md "
                           "(e.g. `eksprivate tunnel`)."))


@app.command()
def permissions(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    state: StateOpt = None, sandbox: SandboxOpt = False,
    account: Annotated[str | None, typer.Option(
        "--account", metavar="ID",
        help="The 12-digit account to write the policy for (default: the caller's, asked of STS).")] = None,
    split: Annotated[bool, typer.Option(
        "--split", help="Print a JSON list of documents of at most 6144 characters each (IAM's managed-policy "
                        "size), to attach together.")] = False,
    output: OutputOpt = "json", debug: DebugOpt = False,
) -> None:
    """Print the IAM policy an operator needs to run every command on this cluster with this config
    (JSON on stdout; --output text explains it per service). Derived from the steps, not kept by hand."""
    with boundary(debug):
        from eksprivate import permissions as policy
        from eksprivate import ui
        from eksprivate.target import permissions_context

        _check_output(output)
        opts = _options(name, region, profile, config, state, sandbox)
        ctx, s3_state = permissions_context(opts, account)
        found = policy.entries(policy.sources_for(ctx, s3_state))
        document = policy.document(found)
        if output == "json":
            ui.print_json(policy.split(document) if split else document)
            return
        size = policy.size(document)
        header = [f"IAM policy for cluster {ctx.name} in {ctx.region}, account {ctx.account} "
                  f"(partition {ctx.partition.name}): {len(document['Statement'])} statements, {len(found)} "
                  f"actions, {size} characters (a managed policy holds {policy.MANAGED_POLICY_LIMIT})",
                  "Each action: [the verbs that call it: find = every read, create, update = up on an existing "
                  "resource, remove = down and up --prune], what it may act on, its conditions, and why.",
                  "`eksprivate permissions` (JSON) prints the document itself; with --split, as documents of at "
                  "most 6144 characters (managed policies) to attach together."]
        ui.out.print(policy.explain(found, header), highlight=False, markup=False, soft_wrap=True)


@app.command()
def image(
    reference: Annotated[str, typer.Argument(metavar="IMAGE", help="e.g. registry.k8s.io/pause:3.10 or nginx:1.27")],
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    sandbox: SandboxOpt = False, debug: DebugOpt = False,
) -> None:
    """Print the reference pods use to pull IMAGE through the cluster's ECR pull-through cache."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.images import cached_reference, parse_image, upstream_for
        from eksprivate.partitions import of_arn

        try:
            upstream = upstream_for(parse_image(reference).registry)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        opts = _options(name, region, profile, config, None, sandbox)
        settings, aws = _connect(opts)
        identity = aws.sts.get_caller_identity()  # the one call: account and partition of the registry
        try:
            cached = cached_reference(reference, str(identity["Account"]), aws.region,
                                      of_arn(str(identity["Arn"])).dns_suffix)
        except ValueError as exc:
            raise UsageError(str(exc), "mirror it into an ECR repository instead (docs/mirroring-images.md)") from None
        if upstream is not None and upstream.short not in {r.upstream for r in settings.pull_through_cache}:
            ui.warn(f"{upstream.short} is not in this config's pull_through_cache: add it and run `eksprivate up`, "
                    "or pulls of this reference fail")
        ui.out.print(cached, highlight=False, markup=False, soft_wrap=True)


@app.command()
def tunnel(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Local port.")] = 8443,
    path: Annotated[Path | None, typer.Option("--kubeconfig", help="Default: $KUBECONFIG or ~/.kube/config.")]
    = None,
    debug: DebugOpt = False,
) -> None:
    """Forward a local port to the private API through a node with AWS Session Manager."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.tunnel import run_tunnel

        opts = _options(name, region, profile, config, None, False)
        settings, aws = _connect(opts)
        code = run_tunnel(aws, settings.name, local_port=port, kubeconfig=path, profile=opts.profile, say=ui.info)
        raise typer.Exit(code)


@app.command()
def unlock(
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    state: StateOpt = None, sandbox: SandboxOpt = False, yes: YesOpt = False, debug: DebugOpt = False,
) -> None:
    """Show the lock on an S3 state and break it, when the run that held it is gone (killed, machine lost)."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.state_admin import unlock as break_lock
        from eksprivate.target import open_context

        opts = _options(name, region, profile, config, state, sandbox)
        ctx = open_context(opts, mutate=False, need_azs=False)
        break_lock(ctx.ledger.store, confirm=lambda question: _confirmed(question, yes), say=ui.info, warn=ui.warn)


@state_app.command("migrate")
def state_migrate(
    to: Annotated[str, typer.Option("--to", help="Where the state goes: s3://bucket/key or a file path.")],
    name: NameOpt = None, region: RegionOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None,
    state: StateOpt = None, sandbox: SandboxOpt = False, debug: DebugOpt = False,
) -> None:
    """Move the state (from --state, the config's `state` or the default file) to --to, safely."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.state import LocalStore, StateStore
        from eksprivate.state_admin import migrate
        from eksprivate.target import open_context, state_location

        opts = _options(name, region, profile, config, state, sandbox)
        ctx = open_context(opts, mutate=False, need_azs=False)
        where, warnings = state_location(opts, ctx.settings, ctx.aws, given=to)
        for text in warnings:
            ui.warn(text)
        dest = where if isinstance(where, StateStore) else LocalStore(where)
        kept = migrate(ctx.ledger.store, dest, name=ctx.name, region=ctx.region, account=ctx.account)
        ui.info(f"state of {ctx.name} moved from {ctx.ledger.store.location} to {dest.location}; {kept}. "
                f"Pass --state {dest.location} (or set `state` in the config) from now on.")


def _confirmed(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("refusing without confirmation: no terminal to ask on", "pass --yes")
    return typer.confirm(question)


@sandbox_app.command("start")
def sandbox_start(time_scale: ScaleOpt = None, debug: DebugOpt = False) -> None:
    """Start the sandbox in the background (up/down/... --sandbox also start it when needed)."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.sandbox.process import ensure_running

        info = ensure_running(Path("state"), time_scale)
        ui.info(f"sandbox running at {info.url} (pid {info.pid}, time scale {info.time_scale})")


@sandbox_app.command("stop")
def sandbox_stop(debug: DebugOpt = False) -> None:
    """Stop the background sandbox (its AWS resources vanish with it)."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.sandbox.process import stop

        ui.info("sandbox stopped" if stop(Path("state")) else "no sandbox was running")


@sandbox_app.command("bucket")
def sandbox_bucket(
    bucket: Annotated[str, typer.Argument(metavar="BUCKET", help="Bucket name for the state, e.g. team-state.")],
    region: RegionOpt = None,
    versioning: Annotated[bool, typer.Option(
        "--versioning/--no-versioning", help="Turn versioning on (the state's backup; default).")] = True,
    debug: DebugOpt = False,
) -> None:
    """Make an S3 bucket on the sandbox for `--state s3://BUCKET/...` (versioned, as a team's should be)."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.aws import Aws
        from eksprivate.errors import AwsApiError, NotFound
        from eksprivate.sandbox.process import ensure_running
        from eksprivate.target import SANDBOX_CREDENTIALS, SANDBOX_REGION

        where = region or SANDBOX_REGION
        info = ensure_running(Path("state"), on_start=lambda text: ui.info(_spell(text)))
        s3 = Aws(where, endpoint_url=info.url, credentials=SANDBOX_CREDENTIALS).client("s3")
        args: dict[str, object] = {"Bucket": bucket}
        if where != "us-east-1":  # S3 refuses a LocationConstraint of us-east-1
            args["CreateBucketConfiguration"] = {"LocationConstraint": where}
        try:
            try:
                s3.head_bucket(Bucket=bucket)
                made = "already there"  # a rerun: versioning as asked all the same
            except NotFound:
                s3.create_bucket(**args)
                made = "made"
            if versioning:
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        except AwsApiError as exc:
            raise UsageError(f"bucket {bucket}: {exc}", "choose another name") from None
        said = "with versioning" if versioning else "WITHOUT versioning (up and plan warn about it)"
        ui.info(_spell(f"bucket {bucket} {made} on the sandbox in {where}, {said}. Use it with: "
                       f"`eksprivate up --sandbox --state s3://{bucket}/` (the key <name>-<region>.json)"))


@sandbox_app.command("status")
def sandbox_status(debug: DebugOpt = False) -> None:
    """Say whether a sandbox runs, and where."""
    with boundary(debug):
        from eksprivate import ui
        from eksprivate.sandbox.process import read_running

        info = read_running(Path("state"))
        ui.info(f"sandbox running at {info.url} (pid {info.pid}, time scale {info.time_scale})" if info
                else "no sandbox running")


def _check_output(output: str) -> None:
    if output not in ("text", "json"):
        raise UsageError(f"--output {output!r}: use text or json")


class _Quiet:
    def phase(self, key: str, title: str, phase: str, detail: str = "") -> None:
        return None

    def note(self, key: str, text: str) -> None:
        return None


