//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes the command the leader of a process group of its own: a signal
// to the terminal's group (Ctrl-C) does not reach it, and signalGroup reaches its
// children too.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends SIGTERM, or SIGKILL when kill is set, to the command's process group.
func signalGroup(cmd *exec.Cmd, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}
