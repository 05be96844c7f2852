package beanstalk

import (
	"runtime"
	"syscall"
)

// uname returns the kernel version and machine, as beanstalkd's "os" and "platform".
func uname() (version, machine string) {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return runtime.GOOS, runtime.GOARCH
	}
	return cstr(u.Version[:]), cstr(u.Machine[:])
}

func cstr[T int8 | uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
