"""`make mutate`: mutation testing of the critical modules, one mutmut run per group.

The groups (modules, the tests that matter for them, the database) are declared in
pyproject.toml under [tool.campaign-pool.mutation.<group>]. Each group runs in its own staging
copy of the project (build/mutation/<group>/), whose pyproject.toml carries that group's
`only_mutate` and test selection: mutmut reads one configuration per directory, and a narrow
selection keeps its first pass (every selected test once, to learn which tests reach which
function) short. A staging directory is kept between runs, so mutmut re-tests only what changed.

Usage:
    python scripts/mutate.py                  # every group
    python scripts/mutate.py claim input      # some groups
    python scripts/mutate.py --report         # only the report of the last runs

The report counts, per module, the mutants killed (by a failing test or a timeout) and the
survivors; survivors judged equivalent (no observable behaviour changes) are listed with their
reason in scripts/mutation-equivalents/<group>.toml and left out of the score. Exit status 1 if a
module scores below the bar (90 % of its non-equivalent mutants killed). docs/testing.md,
"Mutation testing", says how to read the report and how to work on survivors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "build" / "mutation"
EQUIVALENTS = ROOT / "scripts" / "mutation-equivalents"  # <group>.toml each
# The verdicts of the last run of each group, kept in the repository: a fresh clone reports them
# and its first run goes on from them (mutmut re-tests the functions whose code changed since).
VERDICTS = ROOT / "scripts" / "mutation-verdicts"  # <group>.json each
BAR = 0.90
MUTANT_TEST_TIMEOUT = 60  # seconds per test while a mutant is in place
DEFAULT_PG = "postgresql://root@127.0.0.1:5432/test"
# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into what the score needs.
KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # failed test, pytest error, timeout, type check
SURVIVED = {0}
NO_TESTS = {5, 33}
NOT_CHECKED = {None}


@dataclass
class Group:
    name: str
    modules: list[str]
    tests: list[str]
    database: str
    # Another group whose mutants this one re-runs when that group left them alive (on the
    # other database: a dialect-only branch is out of reach of the first group's run).
    retries: str | None = None

    @property
    def stage(self) -> Path:
        return STAGES / self.name


@dataclass
class ModuleScore:
    module: str
    killed: int = 0
    survivors: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    no_tests: list[str] = field(default_factory=list)
    # Listed as equivalent but killed: the entry names another mutant now (numbers shift when
    # a function changes) and should be re-checked.
    stale_equivalents: list[str] = field(default_factory=list)
    not_checked: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return (
            self.killed
            + len(self.survivors)
            + len(self.equivalent)
            + len(self.no_tests)
            + self.not_checked
            + self.other
        )

    @property
    def score(self) -> float | None:
        counted = self.killed + len(self.survivors) + len(self.no_tests)
        return self.killed / counted if counted else None


def load_groups() -> dict[str, Group]:
    """The groups of pyproject.toml; a retrying group takes the modules and tests of the group
    it retries unless it names its own (it differs by its database)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    groups = config["tool"]["campaign-pool"]["mutation"]
    loaded = {}
    for name, spec in groups.items():
        retries = spec.get("retry_survivors_of")
        base = groups[retries] if retries else spec
        loaded[name] = Group(
            name,
            spec.get("modules", base["modules"]),
            spec.get("tests", base["tests"]),
            spec.get("database", "sqlite"),
            retries,
        )
    return loaded


def retrying_groups(group: Group, known: dict[str, Group]) -> list[Group]:
    """The groups that re-run `group`'s survivors on another database."""
    return [g for g in known.values() if g.retries == group.name]


def project_files() -> list[str]:
    """Tracked files and new ones not ignored: what a commit would hold, tests being written
    included."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [name for name in out.split("\0") if name and (ROOT / name).is_file()]


def stage(group: Group) -> None:
    """Bring the group's staging copy up to date (unchanged files keep their times, so mutmut
    sees only real changes) and give it the group's mutmut configuration."""
    target = group.stage
    for name in project_files():
        source, copy = ROOT / name, target / name
        if copy.exists() and copy.read_bytes() == source.read_bytes():
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
    pyproject = (ROOT / "pyproject.toml").read_text()
    selection = (
        f"only_mutate = {json.dumps(group.modules)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(group.tests)}\n"
    )
    staged = pyproject.replace("[tool.mutmut]\n", "[tool.mutmut]\n" + selection, 1)
    staged_path = target / "pyproject.toml"
    if not staged_path.exists() or staged_path.read_text() != staged:
        staged_path.write_text(staged)
    restore_verdicts(group)


def meta_path(group: Group, module: str) -> Path:
    return group.stage / "mutants" / f"{module}.meta"


def saved_verdicts(group: Group) -> dict[str, Any]:
    path = VERDICTS / f"{group.name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def restore_verdicts(group: Group) -> None:
    """A staging copy without mutmut's results starts from the saved verdicts: mutmut keeps
    those of functions whose code is unchanged (same hash) and re-tests the rest."""
    for module, saved in saved_verdicts(group).get("modules", {}).items():
        meta = meta_path(group, module)
        if module not in group.modules or meta.exists():
            continue
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(
            json.dumps(
                {
                    "exit_code_by_key": saved["verdicts"],
                    "hash_by_function_name": saved["functions"],
                    "type_check_error_by_key": {},
                    "durations_by_key": {},
                    "estimated_durations_by_key": {},
                }
            )
        )


def save_verdicts(group: Group) -> None:
    """Writes the group's verdicts (null for a mutant not run yet) and function hashes, from
    mutmut's results, to scripts/mutation-verdicts/<group>.json with the commit and date of
    the run."""
    modules = {}
    for module in group.modules:
        meta = meta_path(group, module)
        if not meta.exists():
            continue
        data = json.loads(meta.read_text())
        modules[module] = {
            "functions": dict(sorted(data["hash_by_function_name"].items())),
            # Not yet run mutants too (null): a fresh clone's report counts them as not run.
            "verdicts": dict(sorted(data["exit_code_by_key"].items())),
        }
    if not modules:
        return
    VERDICTS.mkdir(parents=True, exist_ok=True)
    saved = {"commit": head_commit(), "date": date.today().isoformat(), "modules": modules}
    (VERDICTS / f"{group.name}.json").write_text(json.dumps(saved, indent=1) + "\n")


def head_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def environment(group: Group, run: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TEST_REDIS_URL", "DATABASE_URL"}}
    # Mutants run in parallel, each in its own pytest session: a shared Redis would be flushed
    # under another's feet, so every session gets fakeredis; databases are private per test.
    env.pop("TEST_DATABASE_URL", None)
    if group.database == "postgresql":
        env["TEST_DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG
    # A mutant that makes a refill loop or wait forever hangs its test: fail it after a minute
    # rather than the suite's 180 s (the slowest selected test takes under 10 s unloaded).
    env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} -o timeout={MUTANT_TEST_TIMEOUT}"
    env["CAMPAIGN_POOL_TEST_GOLDENS"] = run
    env["PYTEST_INSTANCE_DIR"] = str(group.stage / "instance")
    return env


def drop_shared_goldens(group: Group, run: str) -> None:
    """The goldens a run kept across its sessions (tests/support/databases.py)."""
    if group.database == "postgresql":
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        url = make_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG).set(database="postgres")
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            names = conn.scalars(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                {"p": f"cp_golden_{run}_%"},
            ).all()
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
    shutil.rmtree(group.stage / "instance", ignore_errors=True)


def left_alive(runs: list[Group], modules: list[str]) -> list[str]:
    """The mutants of `modules` that `runs` tested and none killed, and that are not judged
    equivalent (not yet tested ones are left to the next full run)."""
    equivalents = load_equivalents()
    verdicts: dict[str, list[int | None]] = {}
    for run in runs:
        for module in modules:
            for name, code in exit_codes(run, module).items():
                verdicts.setdefault(name, []).append(code)
    return sorted(
        name
        for name, codes in verdicts.items()
        if strongest(codes) not in KILLED | NOT_CHECKED and name not in equivalents
    )


def run_group(
    group: Group, max_children: int, known: dict[str, Group], survivors_only: bool = False
) -> int:
    """One mutmut run of the group: every mutant not decided yet; with `survivors_only`, the
    mutants still alive (after new tests: mutmut does not re-test what only tests changed); a
    retrying group always runs what the group it retries left alive."""
    print(f"== {group.name}: {', '.join(group.modules)} on {group.database}", flush=True)
    names: list[str] = []
    if group.retries:
        runs = [known[group.retries], group] if survivors_only else [known[group.retries]]
        names = left_alive(runs, group.modules)
    elif survivors_only:
        # What a retrying group killed on its database is not alive: leave it out.
        names = left_alive([group, *retrying_groups(group, known)], group.modules)
    if group.retries or survivors_only:
        print(f"   re-running {len(names)} mutants left alive", flush=True)
        if not names:
            return 0
    stage(group)
    (group.stage / "instance").mkdir(parents=True, exist_ok=True)
    run = f"{group.name}_{uuid.uuid4().hex[:8]}"
    mutmut = Path(sys.executable).parent / "mutmut"
    log = group.stage / "mutmut.log"
    # mutmut and its mutant processes get a process group of their own: tests that start RQ
    # workers in-process rename the process (setproctitle), so `pkill -f mutmut` misses them;
    # stopping this script (Ctrl-C, SIGTERM) stops the whole group instead.
    try:
        with log.open("w") as out:
            mutmut_run = subprocess.Popen(
                [str(mutmut), "run", "--max-children", str(max_children), *names],
                cwd=group.stage,
                env=environment(group, run),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                returncode = mutmut_run.wait()
            except BaseException:
                stop_process_group(mutmut_run)
                raise
    finally:
        drop_shared_goldens(group, run)
        save_verdicts(group)
    if returncode:
        print(f"   mutmut exited with {returncode}: see {log}", flush=True)
    return returncode


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to mutmut's whole process group, SIGKILL to what is left after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
            return


def load_equivalents() -> dict[str, str]:
    """Mutant name -> why it changes nothing observable, from every group's file
    (one table per module: `["portal/services/pool/claim.py"]`, then `"mutant name" = "why"`)."""
    found: dict[str, str] = {}
    for path in sorted(EQUIVALENTS.glob("*.toml")):
        for module in tomllib.loads(path.read_text()).values():
            found.update(module)
    return found


def exit_codes(group: Group, module: str) -> dict[str, int | None]:
    """mutmut's verdict per mutant of `module` in `group`'s last run: from the staging copy,
    or, in a fresh clone, as saved in the repository ({} before any run)."""
    meta = meta_path(group, module)
    if not meta.exists():
        saved = saved_verdicts(group).get("modules", {}).get(module, {})
        return dict(saved.get("verdicts", {}))
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return codes


# Merging the runs of one module: the strongest verdict wins (killed on either database counts).
RANK = [KILLED, SURVIVED, NO_TESTS]


def strongest(codes: list[int | None]) -> int | None:
    for verdicts in RANK:
        for code in codes:
            if code in verdicts:
                return code
    return codes[0] if codes else None


def scores(group: Group, known: dict[str, Group], equivalents: dict[str, str]) -> list[ModuleScore]:
    """The group's modules scored over its own run and every run that retried its mutants."""
    retried_by = retrying_groups(group, known)
    result = []
    for module in group.modules:
        score = ModuleScore(module)
        merged: dict[str, list[int | None]] = {}
        for run in [group, *retried_by]:
            for name, code in exit_codes(run, module).items():
                merged.setdefault(name, []).append(code)
        for name, codes in sorted(merged.items()):
            code = strongest(codes)
            if code in KILLED:
                score.killed += 1
                if name in equivalents:
                    score.stale_equivalents.append(name)
            elif name in equivalents:
                score.equivalent.append(name)
            elif code in SURVIVED:
                score.survivors.append(name)
            elif code in NO_TESTS:
                score.no_tests.append(name)
            elif code in NOT_CHECKED:
                score.not_checked += 1
            else:
                score.other += 1
        result.append(score)
    return result


def report(groups: list[Group], known: dict[str, Group]) -> bool:
    """Prints the table (Markdown, for docs/testing.md) and the survivors; True if all pass."""
    equivalents = load_equivalents()
    commit = head_commit()
    print(f"\nMutation score per module (commit {commit}; bar {BAR:.0%} of non-equivalent mutants)")
    print(
        "\n| group | module | mutants | killed | survived | no tests | equivalent | not run yet "
        "| score |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    details = []
    for group in groups:
        if group.retries:
            continue  # scored with the group it retries
        label = " + ".join([group.name, *(g.name for g in retrying_groups(group, known))])
        for s in scores(group, known, equivalents):
            value = "not run" if s.score is None else f"{s.score:.1%}"
            if s.score is None or s.score < BAR or s.not_checked:
                ok = False
            print(
                f"| {label} | {s.module} | {s.total} | {s.killed} | {len(s.survivors)} | "
                f"{len(s.no_tests)} | {len(s.equivalent)} | {s.not_checked} | {value} |"
            )
            details += [f"survived  {name}" for name in s.survivors]
            details += [f"no tests  {name}" for name in s.no_tests]
            details += [f"killed, yet listed as equivalent  {name}" for name in s.stale_equivalents]
            if s.not_checked:
                details.append(f"not checked: {s.not_checked} mutants of {s.module}")
    if details:
        print("\nNot killed (inspect with `mutmut show NAME` inside build/mutation/<group>/):")
        print("\n".join(details))
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help="groups to run (default: all)")
    parser.add_argument("--report", action="store_true", help="only print the last report")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="re-run only the mutants left alive (not killed, not equivalent): after new tests",
    )
    parser.add_argument(
        "--max-children", type=int, default=os.cpu_count() or 2, help="mutants run at once"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop mutmut's group on kill too
    known = load_groups()
    unknown = [name for name in args.groups if name not in known]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; groups: {', '.join(known)}")
    groups = [known[name] for name in args.groups] if args.groups else list(known.values())
    if not args.report:
        for group in groups:
            run_group(group, args.max_children, known, args.survivors)
    # A retrying group is reported with the group it retries.
    shown = dict.fromkeys(g.retries or g.name for g in groups)
    return 0 if report([known[name] for name in shown], known) else 1


if __name__ == "__main__":
    sys.exit(main())
