"""Launcher process helpers, on small real processes (no broker needed)."""

import signal
import subprocess
import sys

import pytest

from queue_exp.brokers import procs
from queue_exp.errors import LauncherError
from queue_exp.waiting import wait_until


def test_a_broker_that_exits_while_starting_is_reported_with_its_log(tmp_path):
    log = tmp_path / "broker.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["sh", "-c", "echo 'Address already in use'; exit 3"],
                                stdout=out, stderr=subprocess.STDOUT)
    with pytest.raises(LauncherError) as info:
        procs.await_ready(proc, "Kafka", "127.0.0.1:1", lambda: False, 10, [log], lambda: None)
    assert "exited with code 3" in str(info.value)
    assert "Address already in use" in str(info.value)


def test_a_broker_that_never_gets_ready_is_stopped_and_reported(tmp_path):
    log = tmp_path / "broker.log"
    log.write_text("still booting\n")
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    stopped = []

    def stop():
        stopped.append(procs.stop_process_group(proc.pid, "sleep", 5))

    with pytest.raises(LauncherError, match=r"did not accept clients on 127.0.0.1:1 within 1 s"):
        procs.await_ready(proc, "RabbitMQ", "127.0.0.1:1", lambda: False, 1, [log], stop)
    assert stopped == [True] and proc.wait(5) is not None


def test_pid_alive_checks_the_command_line_marker():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        # until the child has exec'd, its command line is still this interpreter's
        wait_until(lambda: "sleep" in procs.cmdline(proc.pid), 5.0, 0.01)
        assert procs.pid_alive(proc.pid, "sleep")
        assert not procs.pid_alive(proc.pid, "kafka.Kafka")  # a recycled pid is not our broker
    finally:
        proc.kill()
        proc.wait()
    assert not procs.pid_alive(proc.pid)


def test_free_port_is_free_and_port_open_sees_a_listener():
    import socket

    port = procs.free_port()
    assert procs.port_is_free(port) and not procs.port_open("127.0.0.1", port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        assert procs.port_open("127.0.0.1", port)
        assert not procs.port_is_free(port)
        assert procs.listening({port}) == {("127.0.0.1", port)}
    assert not procs.port_open("127.0.0.1", port)


def test_choose_ports_prefers_the_usual_then_last_runs_then_any_free():
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    free = procs.free_port()
    try:
        chosen = procs.choose_ports(("a", "b", "c"), previous={"a": busy, "b": free},
                                    preferred={"c": busy})
    finally:
        taken.close()
    assert chosen["b"] == free  # last run's port, still free
    assert chosen["a"] != busy and chosen["c"] != busy  # busy ones are skipped
    assert len(set(chosen.values())) == 3


def test_quiet_ports_are_free_and_below_the_ephemeral_range():
    taken = {procs.quiet_port()}
    for _ in range(20):
        port = procs.quiet_port(avoid=taken)
        assert port not in taken and procs.port_is_free(port)
        assert port < procs.ephemeral_ports().start and port not in procs.CLI_DIST_PORTS
        taken.add(port)
    chosen = procs.choose_ports(("a", "b"), {}, quiet=True)
    assert len(set(chosen.values())) == 2
    assert all(port < procs.ephemeral_ports().start for port in chosen.values())


def test_signal_until_gone_waits_for_the_process_not_only_for_its_check():
    """A check can say "gone" before the process has exited (a dying JVM's command line
    empties first): the kill must still return only once the process has exited."""
    slow_exit = ("import signal, sys, time\n"
                 "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1), sys.exit(0)))\n"
                 "print('ready', flush=True)\n"
                 "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", slow_exit], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        procs.signal_until_gone(proc.pid, signal.SIGTERM, lambda: True, 10, "a slow exit")
        assert proc.poll() is not None, "returned while the process was still running"
    finally:
        proc.kill()
        proc.wait(10)
