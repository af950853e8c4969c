#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""make soak: simulated devices sync through random faults for a bounded time.

SOAK_DEVICES simulators (default 20) each log SOAK_DAYS days of telemetry
(default 1), are paired to one host data directory and get a slow radio
(--link-rate) so that their logs last well into the soak. Until SOAK_SECONDS
(default 120) have passed, rounds repeat: some simulators are restarted with
a random mix of faults (--drop-after, --drop-at-ack, --latency, a slower
--link-rate, a small --mtu so that drops land mid-fragment) or none, some
are killed with SIGKILL during the round, and one `amulet sync --all` runs,
often killed with SIGKILL after a random delay. Then every simulator is
restarted fault-free, one last `amulet sync --all` runs, and each device's
stored samples are compared with the dataset its simulator generated
(sorted CSV and SHA-256; lost and duplicated counted apart).

A quarter of the simulators are long-lived: started once with a persistent
fault mix and never restarted, so their fd count and RSS at the start and
end of the soak show a leak. The host tool is a new process each round, so
for it the harness compares its peak RSS (wait4 ru_maxrss) in the first
round, which is never killed early, with the final sync's, and reports the
most fds it was seen holding (/proc/PID/fd, polled while it runs).

Prints one summary line and exits 1 if a sample was lost or duplicated, the
host's peak RSS grew by more than 20 %, a long-lived simulator's fds or RSS
grew (RSS is not judged when SAN_CFLAGS has -fsanitize=address), the final
sync failed, a tool crashed or a sync failed other than on its link; the
details go to stderr. SOAK_SEED fixes the random choices (timing still
varies); SOAK_KEEP=1 keeps the work directory.
"""
import collections
import datetime
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILDDIR = os.environ.get("top_builddir", ".")
SIM_TOOL = os.path.join(BUILDDIR, "tools", "amulet-sim")
HOST_TOOL = os.path.join(BUILDDIR, "tools", "amulet")
N_DEVICES = int(os.environ.get("SOAK_DEVICES", "20"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "120"))
DAYS = int(os.environ.get("SOAK_DAYS", "1"))
SEED = int(os.environ.get("SOAK_SEED", str(random.SystemRandom().randrange(1, 1 << 31))))
KEEP = os.environ.get("SOAK_KEEP") == "1"
START = "2026-11-01"
PROFILES = ("band", "watch", "band", "watch", "toy")
ROUND_CAP = 10.0  # a round's sync is killed after this long at the latest
FINAL_CAP = 120.0  # the fault-free sync should take a second or two
# Unshaped, a day of samples syncs in 40 ms, and the soak would spend all but
# its first round on empty logs. Each simulated radio is slowed so that its
# log drains in about half the soak under faults (a day of band samples is
# about 750 kbit on the link): 30 kbit/s for the defaults. Later rounds mostly
# run to the end, with faults striking the handshake and the empty sync.
RADIO_BPS = 3_600_000 * DAYS / SECONDS
LINK_ERRORS = {"disconnected", "timed-out", "io"}  # what link faults may cause
MEMORY_SLACK = 1.2
# AddressSanitizer holds freed memory in quarantine, so RSS grows without a leak
# there; its leak check runs instead when a simulator or a finished sync exits.
RSS_JUDGED = "-fsanitize=address" not in os.environ.get("SAN_CFLAGS", "")


class SoakError(Exception):
    pass


def pid_alive(process):
    return process is not None and process.poll() is None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sim:
    def __init__(self, work, index):
        self.work = work
        self.name = f"dev{index:02d}"
        self.profile = PROFILES[index % len(PROFILES)]
        self.seed = SEED % 100000 + index
        self.radio_bps = 0  # set from the soak's random generator
        self.long_lived = index % 4 == 0
        self.sock = os.path.join(work, self.name + ".sock")
        self.state = os.path.join(work, self.name + ".state")
        self.process = None
        self.instance = 0
        self.options = []
        self.log_path = None
        self.listen_fds = 0  # of this instance, once it listens
        self.baseline_rss = 0  # KiB, of a long-lived instance after its first round

    def start(self, options, generate=False):
        self.instance += 1
        self.options = options
        self.log_path = os.path.join(self.work, f"{self.name}.{self.instance}.log")
        args = [SIM_TOOL, "--listen", self.sock, "--state", self.state, "--profile", self.profile]
        if generate:
            args += ["--days", str(DAYS), "--seed", str(self.seed), "--start", START]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(args + options, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)

    def wait_listening(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path) as log:
                if "listening on" in log.read():
                    self.listen_fds = fd_count(self.process.pid)
                    return
            if self.process.poll() is not None:
                raise SoakError(f"{self.name}: amulet-sim exited with {self.process.returncode}:\n"
                                + self.log_tail())
            time.sleep(0.02)
        raise SoakError(f"{self.name}: amulet-sim did not start:\n" + self.log_tail())

    def stop(self, sig=signal.SIGTERM):
        """Stops the simulator; returns what went wrong, or None."""
        if self.process is None:
            return None
        problem = None
        if self.process.poll() is not None:
            problem = f"exited by itself with {self.process.returncode}"
        else:
            self.process.send_signal(sig)
            try:
                self.process.wait(5)
                # SIGTERM is a clean exit (and the leak check of a sanitizer build)
                if sig == signal.SIGTERM and self.process.returncode != 0:
                    problem = f"exited with {self.process.returncode} on SIGTERM"
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                problem = "did not exit within 5 s of SIGTERM"
        self.process = None
        if problem is None:
            return None
        return f"{self.name}: amulet-sim {problem}: " + self.log_tail().strip().replace("\n", " | ")

    def quiescent_fds(self, want):
        """The fd count once the last session is torn down (the simulator
        closes a connection 200 ms after it ends), or after 2 s."""
        deadline = time.monotonic() + 2.0
        count = fd_count(self.process.pid)
        while count > want and time.monotonic() < deadline:
            time.sleep(0.05)
            count = fd_count(self.process.pid)
        return count

    def log_tail(self):
        with open(self.log_path) as log:
            return "".join(log.readlines()[-10:])


def random_faults(rng, sim):
    """The simulator's radio with a random mix of faults (often none), and
    how many of them are delays. A long-lived simulator keeps its mix for the
    whole soak, so it never gets a slower link, and its link drops only after
    a few batches got through."""
    options = []
    mtu = 517
    if rng.random() < 0.25:
        # tiny fragments: a drop almost always cuts a batch mid-way
        mtu = rng.choice((23, 40, 100, 185))
        options += ["--mtu", str(mtu)]
    datagrams_per_batch = -(-4200 // (mtu - 5))  # a 4 KiB batch, 5 bytes of framing each
    if rng.random() < 0.35:
        if sim.long_lived:
            drop_after = rng.randint(2, 6) * datagrams_per_batch + 20
        else:
            drop_after = rng.randint(8, 3 * datagrams_per_batch + 20)
        options += ["--drop-after", str(drop_after)]
    if rng.random() < 0.3:
        options += ["--drop-at-ack", str(rng.randint(1, 8))]
    if rng.random() < 0.3:
        options += ["--latency", str(rng.randint(1, 250))]
    link_rate = sim.radio_bps
    if not sim.long_lived and rng.random() < 0.3:
        link_rate = int(sim.radio_bps * rng.uniform(0.3, 0.8))
    options += ["--link-rate", str(link_rate)]
    return options, ("--latency" in options) + (link_rate != sim.radio_bps)


class Soak:
    def __init__(self, work):
        self.work = work
        self.host_dir = os.path.join(work, "host")
        self.rng = random.Random(SEED)
        self.sims = [Sim(work, i) for i in range(N_DEVICES)]
        for sim in self.sims:
            sim.radio_bps = int(RADIO_BPS * self.rng.uniform(0.7, 1.5))
        self.host = None
        self.faults = collections.Counter()
        self.rounds = 0
        self.finished_rounds = 0  # whose sync ran to its end
        self.host_rss = 0  # KiB: peak RSS of the last amulet sync --all
        self.first_rss = 0  # of the first round's
        self.host_fds = 0
        self.problems = []
        self.round_log = open(os.path.join(work, "rounds.log"), "w")

    def note(self, problem):
        if problem is not None:
            self.problems.append(problem)

    def host_command(self, *args):
        return subprocess.run([HOST_TOOL, "--data-dir", self.host_dir] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)

    def setup(self):
        for sim in self.sims:
            sim.start([], generate=True)
        for sim in self.sims:
            sim.wait_listening()
            pairing = self.host_command("pair", "sim:" + sim.sock, "--name", sim.name, "--yes")
            if pairing.returncode != 0:
                raise SoakError(f"pairing {sim.name} failed ({pairing.returncode}): {pairing.stderr}")
        # now the slow radios and the first faults; the long-lived simulators keep theirs
        self.restart(self.sims)

    def restart(self, sims, clean=False):
        for sim in sims:
            self.note(sim.stop())
            options, delays = ([], 0) if clean else random_faults(self.rng, sim)
            sim.start(options)
            self.faults["delay"] += delays
        for sim in sims:
            sim.wait_listening()

    def run_sync(self, kill_after, sim_kills, fault=True):
        """One `amulet sync --all`; SIGKILLs it after kill_after s (a fault
        unless told otherwise) and each simulator in sim_kills after its
        delay. Returns the per-device JSON results, or None if the sync was
        killed."""
        with open(os.path.join(self.work, "sync.out"), "w") as out, \
                open(os.path.join(self.work, "sync.err"), "w") as err:
            self.host = subprocess.Popen([HOST_TOOL, "--data-dir", self.host_dir, "--json", "sync", "--all"],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        began = time.monotonic()
        killed = False
        while True:
            elapsed = time.monotonic() - began
            for sim, delay in list(sim_kills.items()):
                if elapsed >= delay:
                    self.note(sim.stop(signal.SIGKILL))
                    self.faults["sim kill"] += 1
                    del sim_kills[sim]
            if elapsed >= kill_after and not killed:
                # not Popen.send_signal: it polls first and may reap the process wait4 is for
                os.kill(self.host.pid, signal.SIGKILL)
                killed = True
                if fault:
                    self.faults["host kill"] += 1
                else:
                    self.problems.append(f"amulet sync --all still ran after {kill_after:.0f} s")
            self.host_fds = max(self.host_fds, fd_count(self.host.pid))
            pid, status, usage = os.wait4(self.host.pid, os.WNOHANG)
            if pid != 0:
                break
            time.sleep(0.02)
        self.host.returncode = os.waitstatus_to_exitcode(status)
        self.host = None
        self.host_rss = usage.ru_maxrss
        if killed and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            return None
        if os.WIFSIGNALED(status):
            self.problems.append(f"amulet sync --all died of signal {os.WTERMSIG(status)}")
            return None
        if os.WEXITSTATUS(status) not in (0, 7):  # 7: a device's link failed
            with open(os.path.join(self.work, "sync.err")) as err:
                self.problems.append(f"amulet sync --all exited with {os.WEXITSTATUS(status)}: {err.read()[-400:]}")
        with open(os.path.join(self.work, "sync.out")) as out:
            text = out.read()
        try:
            results = json.loads(text)
        except ValueError:
            self.problems.append(f"amulet sync --all (exit {os.WEXITSTATUS(status)}) printed no JSON: {text[:200]!r}")
            return None
        for result in results:
            code = result.get("error", {}).get("code")
            if code is not None and code not in LINK_ERRORS:
                self.problems.append(f"{result['name']}: {code}: {result['error']['message']}")
        return results

    def soak_round(self):
        self.rounds += 1
        restartable = [sim for sim in self.sims if not sim.long_lived]
        # a simulator killed last round comes back; others now and then, with new faults
        self.restart([sim for sim in restartable if sim.process is None or self.rng.random() < 0.35])
        sim_kills = {sim: self.rng.uniform(0.02, 2.0) for sim in restartable if self.rng.random() < 0.08}
        # the first round runs its course (up to the cap): its peak RSS is the baseline
        kill_after = self.rng.uniform(0.02, 3.0) if self.rounds > 1 and self.rng.random() < 0.5 else ROUND_CAP
        results = self.run_sync(kill_after, sim_kills)
        if results is None:
            summary = "killed"
        else:
            self.finished_rounds += 1
            summary = "%d/%d ok, %d samples" % (sum(r["ok"] for r in results), len(results),
                                                sum(r["samples"] for r in results))
        self.round_log.write(f"round {self.rounds}: {summary}; " + ", ".join(
            f"{sim.name} {' '.join(sim.options) or '-'}" for sim in self.sims) + "\n")
        self.round_log.flush()
        if self.rounds == 1:
            self.first_rss = self.host_rss
            for sim in self.sims:
                if sim.long_lived:
                    sim.baseline_rss = rss_kib(sim.process.pid)

    def check_long_lived(self):
        """Fds of each long-lived simulator when it began listening and now,
        and its RSS after the first round and now."""
        grown = []
        for sim in self.sims:
            if not sim.long_lived:
                continue
            if not pid_alive(sim.process):
                self.note(sim.stop())
                continue
            fds_then, rss_then = sim.listen_fds, sim.baseline_rss
            fds_now = sim.quiescent_fds(fds_then)
            rss_now = rss_kib(sim.process.pid)
            self.round_log.write(f"{sim.name}: fds {fds_then} -> {fds_now}, RSS {rss_then} -> {rss_now} KiB\n")
            if fds_now > fds_then:
                grown.append(f"{sim.name} fds {fds_then} -> {fds_now}")
            if RSS_JUDGED and rss_now > rss_then * MEMORY_SLACK:
                grown.append(f"{sim.name} RSS {rss_then} -> {rss_now} KiB")
        return grown

    def count_logged_faults(self):
        for name in os.listdir(self.work):
            if not name.endswith(".log") or not name.startswith("dev"):
                continue
            with open(os.path.join(self.work, name)) as log:
                for line in log:
                    if "fault injection: link dropped" in line:
                        self.faults["drop"] += 1
                    elif line.startswith("fault: dropped the link on sync ack"):
                        self.faults["ack drop"] += 1

    def compare(self, sim):
        """(samples, lost, duplicated) of one device: the host's stored
        samples against the dataset its simulator generated."""
        expected = subprocess.run([SIM_TOOL, "--profile", sim.profile, "--days", str(DAYS), "--seed", str(sim.seed),
                                   "--start", START, "--dump-csv"], capture_output=True, text=True,
                                  check=True).stdout.splitlines()
        start = datetime.date.fromisoformat(START)
        first, last = start - datetime.timedelta(days=2), start + datetime.timedelta(days=DAYS + 2)
        data = self.host_command("data", sim.name, "--csv", "--from", first.isoformat(), "--to", last.isoformat())
        if data.returncode != 0:
            raise SoakError(f"amulet data {sim.name} failed ({data.returncode}): {data.stderr}")
        stored = data.stdout.splitlines()[1:]
        expected.sort()
        stored.sort()
        digest = hashlib.sha256("\n".join(stored).encode()).hexdigest()
        if digest == hashlib.sha256("\n".join(expected).encode()).hexdigest():
            return len(expected), 0, 0
        want, got = collections.Counter(expected), collections.Counter(stored)
        lost = sum((want - got).values())
        duplicated = sum((got - want).values())
        self.problems.append(f"{sim.name} ({sim.profile}, seed {sim.seed}): device had {len(expected)} samples, "
                             f"host has {len(stored)}: {lost} lost, e.g. {sorted(want - got)[:2]}, "
                             f"{duplicated} duplicated or unknown, e.g. {sorted(got - want)[:2]}")
        return len(expected), lost, duplicated

    def run(self):
        self.setup()
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            self.soak_round()
        grown = self.check_long_lived()
        self.restart(self.sims, clean=True)
        final_samples = 0
        for attempt in range(3):
            final = self.run_sync(FINAL_CAP, {}, fault=False)
            final_samples += sum(result["samples"] for result in final or [])
            if final is not None and all(result["ok"] for result in final):
                break
            with open(os.path.join(self.work, "sync.err")) as err:
                self.problems.append(f"the fault-free sync failed (attempt {attempt + 1}): " + err.read().strip()[:400])
        self.count_logged_faults()
        samples = lost = duplicated = 0
        for sim in self.sims:
            counts = self.compare(sim)
            samples += counts[0]
            lost += counts[1]
            duplicated += counts[2]
        rss_first, rss_last = self.first_rss / 1024, self.host_rss / 1024
        n_faults = sum(self.faults.values())
        kinds = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(self.faults.items()) if n > 0)
        asan = "" if RSS_JUDGED else " (not judged: ASan)"
        line = (f"soak: {N_DEVICES} devices, {self.rounds} rounds ({self.finished_rounds} ran to the end), "
                f"{n_faults} faults injected ({kinds}), {samples} samples ({final_samples} left for the final sync), "
                f"lost={lost}, duplicated={duplicated}, host peak RSS {rss_first:.1f} -> {rss_last:.1f} MiB{asan}, "
                f"host fds <= {self.host_fds}, "
                + ("sim fds stable" if not grown else "sim grew: " + "; ".join(grown)))
        failed = (lost > 0 or duplicated > 0 or grown or self.problems
                  or (RSS_JUDGED and self.host_rss > self.first_rss * MEMORY_SLACK))
        return line, bool(failed)

    def cleanup(self):
        if self.host is not None and self.host.poll() is None:
            self.host.kill()
            self.host.wait()
        for sim in self.sims:
            if pid_alive(sim.process):
                sim.process.kill()
                sim.process.wait()
        self.round_log.close()


def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    for tool in (SIM_TOOL, HOST_TOOL):
        if not os.access(tool, os.X_OK):
            print(f"soak: {tool} is not built (run make first)", file=sys.stderr)
            return 2
    work = tempfile.mkdtemp(prefix="amu-soak.")
    soak = Soak(work)
    failed = True
    line = None
    try:
        line, failed = soak.run()
    except SoakError as error:
        soak.problems.append(str(error))
    finally:
        soak.cleanup()
        for problem in soak.problems:
            print("soak: " + problem, file=sys.stderr)
        if line is not None:
            print(line)
        if failed:
            print(f"soak: failed with SOAK_SEED={SEED}", file=sys.stderr)
        if KEEP:
            print(f"soak: work directory kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
