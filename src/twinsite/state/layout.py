"""Where a host keeps its state: every path under the state directory is named here and nowhere else.

    <state>/                              HostState
      events.jsonl                        the event log (state.events)
      ssh/                                OpenSSH control sockets shared by every scenario
      supervisor.pid agent.pid agent.log  the agent and its supervisor (agent.service)
      <scenario>/                         ScenarioState
        role.json                         which host is active, at which epoch (state.role)
        monitor.json                      this standby's monitoring conditions (state.monitor)
        switchover.json                   the switchover's run (state.runs)
        switchover.lock .pid .log         one switchover at a time; an automatic one's process
        switchovers/<run>.json .txt       switchover reports (state.reports)
        fence.jsonl                       what fencing did (state.events)
        history/<day>.jsonl               a line a minute: role, lag, backlog, rewind window (state.history)
        set-aside/<run>/                  divergent changes set aside by a switch-back: root-<n>/ copies,
                                          manifest.json (state.set_aside)
        recovery/                         RecoveryState: assured-recovery tests on this standby
          run.json test.lock end          the test's run (state.runs), its lock, an end request (state.end_request)
          schedule.json                   the last scheduled minute started (state.schedule)
          overlay/<n>/                    the throw-away layer of root n during a test
          tests/<ts>-<id>.json            evidence (state.evidence)
        root-<n>/<standby>/               SenderState: root n replicated to that standby (active host)
          journal/ status.json epoch      the journal, the sender's status (state.sender_status), its epoch
        recv/root-<n>/                    ReceiverState: root n received here (standby)
          applied_seq heard               the durable position (state.applied), when the sender was heard
          rewind/ rewind.json             the rewind log (cdp.log) and a rewind in effect (state.rewind)
          bookmarks.json                  named points (state.bookmarks)
          spool/                          a test's spool: spooling.json (state.spool), records/
          apply.lock                      held while a batch, a rewind or a promotion changes the replica
    <config>/<scenario>.yml .stopped      the declaration, and the marker of a stopped scenario (state.stopped)

On the controller (``twinsite_controller_state_dir``, ~/.local/state/twinsite by default):

    <controller>/plans/<plan>/            PlanState: a recovery plan's runs (twinsite.plans)
      run.json                            the plan's run, one step per group (state.runs)
      reports/<run>.json .md              its report, rewritten after each attempt
    <controller>/ssh/                     OpenSSH control sockets: one connection per host, shared by the plans

The formats are in docs/formats.md; each file is read and written by the one module named beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/twinsite")


@dataclass(frozen=True)
class ReceiverState:
    """``<state>/<scenario>/recv/root-<n>``: what a standby keeps of one root (``twinsite receive --state``)."""

    dir: Path

    @property
    def applied(self) -> Path:
        return self.dir / "applied_seq"

    @property
    def heard(self) -> Path:
        return self.dir / "heard"

    @property
    def session(self) -> Path:
        return self.dir / "session"

    @property
    def point(self) -> Path:
        return self.dir / "point.json"

    @property
    def rewind_log(self) -> Path:
        return self.dir / "rewind"

    @property
    def rewind(self) -> Path:
        return self.dir / "rewind.json"

    @property
    def bookmarks(self) -> Path:
        return self.dir / "bookmarks.json"

    def old_bookmarks(self, epoch: int) -> Path:
        """Where the bookmarks of an earlier epoch are set aside."""
        return self.dir / f"bookmarks.epoch-{epoch}.json"

    @property
    def spool(self) -> Path:
        return self.dir / "spool"

    @property
    def spool_marker(self) -> Path:
        return self.spool / "spooling.json"

    @property
    def spool_records(self) -> Path:
        return self.spool / "records"

    @property
    def apply_lock(self) -> Path:
        return self.dir / "apply.lock"

    @property
    def hold_lock(self) -> Path:
        """Held by `twinsite point-hold` for as long as it holds the replica at a point (ops.at_point)."""
        return self.dir / "hold.lock"

    @property
    def role(self) -> Path:
        """The scenario's role file, two levels up."""
        return self.dir.parent.parent / "role.json"


@dataclass(frozen=True)
class SenderState:
    """``<state>/<scenario>/root-<n>/<standby>``: one root replicated to one standby, on the active host."""

    dir: Path

    @property
    def journal(self) -> Path:
        return self.dir / "journal"

    @property
    def status(self) -> Path:
        return self.dir / "status.json"

    @property
    def epoch(self) -> Path:
        return self.dir / "epoch"

    @property
    def index(self) -> Path:
        """The planner's picture of the replica, kept between runs (sync.index)."""
        return self.dir / "index.sqlite"

    @property
    def points_pin(self) -> Path:
        """A lock: while `twinsite verify` holds it, the sender removes no point snapshot of this root."""
        return self.dir / "points.pin"


@dataclass(frozen=True)
class RecoveryState:
    """``<state>/<scenario>/recovery``: a scenario's assured-recovery tests on this host."""

    dir: Path

    @property
    def run(self) -> Path:
        return self.dir / "run.json"

    @property
    def lock(self) -> Path:
        return self.dir / "test.lock"

    @property
    def end(self) -> Path:
        return self.dir / "end"

    @property
    def schedule(self) -> Path:
        return self.dir / "schedule.json"

    @property
    def evidence(self) -> Path:
        return self.dir / "tests"

    @property
    def background_pid(self) -> Path:
        """The pid of an interactive test started in the background (recover-test --hold --background)."""
        return self.dir / "background.pid"

    @property
    def background_log(self) -> Path:
        """Its output (the test's progress, its evidence at the end)."""
        return self.dir / "background.log"

    def overlay(self, index: int) -> Path:
        return self.dir / "overlay" / str(index)


@dataclass(frozen=True)
class ScenarioState:
    """``<state>/<scenario>``: everything one host keeps of one scenario."""

    state_dir: Path
    name: str

    @property
    def dir(self) -> Path:
        return self.state_dir / self.name

    @property
    def role(self) -> Path:
        return self.dir / "role.json"

    @property
    def monitor(self) -> Path:
        return self.dir / "monitor.json"

    @property
    def switchover_run(self) -> Path:
        return self.dir / "switchover.json"

    @property
    def switchover_lock(self) -> Path:
        return self.dir / "switchover.lock"

    @property
    def switchover_pid(self) -> Path:
        return self.dir / "switchover.pid"

    @property
    def switchover_log(self) -> Path:
        return self.dir / "switchover.log"

    @property
    def reports(self) -> Path:
        return self.dir / "switchovers"

    @property
    def history(self) -> Path:
        return self.dir / "history"

    @property
    def fence_record(self) -> Path:
        return self.dir / "fence.jsonl"

    def set_aside(self, run_id: str, index: int | None = None) -> Path:
        """Where a switch-back sets aside what differed (with ``index``: root n's copies)."""
        where = self.dir / "set-aside" / run_id
        return where if index is None else where / f"root-{index}"

    @property
    def recovery(self) -> RecoveryState:
        return RecoveryState(self.dir / "recovery")

    def sender(self, index: int, replica: str) -> SenderState:
        return SenderState(self.dir / f"root-{index}" / replica)

    def receiver(self, index: int) -> ReceiverState:
        return ReceiverState(self.dir / "recv" / f"root-{index}")

    @property
    def host(self) -> HostState:
        return HostState(self.state_dir)


@dataclass(frozen=True)
class HostState:
    """``<state>``: one host's state directory."""

    dir: Path = DEFAULT_STATE_DIR

    @property
    def events(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def ssh(self) -> Path:
        return self.dir / "ssh"

    @property
    def supervisor_pid(self) -> Path:
        return self.dir / "supervisor.pid"

    @property
    def agent_pid(self) -> Path:
        return self.dir / "agent.pid"

    @property
    def agent_log(self) -> Path:
        return self.dir / "agent.log"


@dataclass(frozen=True)
class PlanState:
    """``<controller>/plans/<plan>/``: a recovery plan's runs, kept on the controller."""

    controller: Path
    plan: str

    @property
    def dir(self) -> Path:
        return self.controller / "plans" / self.plan

    @property
    def ssh(self) -> Path:
        """The controller's persistent connections to the hosts (sockets; shared by every plan)."""
        return self.controller / "ssh"

    @property
    def run(self) -> Path:
        return self.dir / "run.json"

    def report(self, run_id: str, suffix: str = ".json") -> Path:
        return self.dir / "reports" / f"{run_id}{suffix}"
