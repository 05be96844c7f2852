package beanstalk

import (
	"bufio"
	"bytes"
	"math"
	"strings"
)

// lineMax is beanstalkd's command buffer (LINE_BUF_SIZE): a command line may be at most
// 224 bytes long, "\r\n" included.
const lineMax = 224

// maxTubeName is the longest tube name, in bytes.
const maxTubeName = 200

// op is a command, numbered as in beanstalkd's prot.c.
type op uint8

const (
	opUnknown op = iota
	opPut
	opPeekJob
	opReserve
	opDelete
	opRelease
	opBury
	opKick
	opStats
	opStatsJob
	opPeekBuried
	opUse
	opWatch
	opIgnore
	opListTubes
	opListTubeUsed
	opListTubesWatched
	opStatsTube
	opPeekReady
	opPeekDelayed
	opReserveTimeout
	opTouch
	opQuit
	opPauseTube
	opKickJob
	opReserveJob
	numOps
)

// prefixes maps command prefixes to ops, in the order beanstalkd tests them: it matches a
// command by prefix, so "reserve-with-timeout " must be tried before "reserve", and
// "quitter" is a quit.
var prefixes = []struct {
	prefix string
	op     op
}{
	{"put ", opPut},
	{"peek ", opPeekJob},
	{"peek-ready", opPeekReady},
	{"peek-delayed", opPeekDelayed},
	{"peek-buried", opPeekBuried},
	{"reserve-with-timeout ", opReserveTimeout},
	{"reserve-job ", opReserveJob},
	{"reserve", opReserve},
	{"delete ", opDelete},
	{"release ", opRelease},
	{"bury ", opBury},
	{"kick ", opKick},
	{"kick-job ", opKickJob},
	{"touch ", opTouch},
	{"stats-job ", opStatsJob},
	{"stats-tube ", opStatsTube},
	{"stats", opStats},
	{"use ", opUse},
	{"watch ", opWatch},
	{"ignore ", opIgnore},
	{"list-tubes-watched", opListTubesWatched},
	{"list-tube-used", opListTubeUsed},
	{"list-tubes", opListTubes},
	{"quit", opQuit},
	{"pause-tube", opPauseTube},
}

// command is one parsed command line.
type command struct {
	op op
	// bad: the line is malformed; the reply is BAD_FORMAT.
	bad bool
	// counted: the command counts in the cmd-* statistics (beanstalkd counts a command once
	// its arguments have parsed).
	counted bool

	id      uint64
	pri     uint32
	delay   uint32 // seconds
	ttr     uint32 // seconds
	size    uint32 // put: body bytes
	garbage bool   // put: text after <bytes>; BAD_FORMAT unless the job is too big
	timeout int32  // reserve-with-timeout seconds; negative waits without end
	bound   uint32 // kick
	tube    string
}

// parseCommand parses a command line (without its "\r\n") exactly as beanstalkd 1.12 does,
// quirks included: commands match by prefix, numbers may be preceded by spaces, kick and
// reserve-with-timeout accept what C's strtoul and strtol accept (so "kick -1" kicks up to
// 2^32-1 jobs and "reserve-with-timeout x" waits 0 seconds), and a NUL byte makes any line
// BAD_FORMAT.
func parseCommand(line []byte) command {
	if bytes.IndexByte(line, 0) >= 0 {
		return command{bad: true}
	}
	s := string(line)
	var c command
	for _, p := range prefixes {
		if strings.HasPrefix(s, p.prefix) {
			c.op = p.op
			break
		}
	}
	rest := func(p string) string { return s[len(p):] }
	exact := func(p string) bool { return len(s) == len(p) }
	var ok bool
	switch c.op {
	case opUnknown:
		return c
	case opPut:
		var r string
		if c.pri, r, ok = readU32(rest("put "), false); !ok {
			return command{op: c.op, bad: true}
		}
		if c.delay, r, ok = readU32(r, false); !ok {
			return command{op: c.op, bad: true}
		}
		if c.ttr, r, ok = readU32(r, false); !ok {
			return command{op: c.op, bad: true}
		}
		if c.size, r, ok = readU32(r, false); !ok {
			return command{op: c.op, bad: true}
		}
		c.garbage, ok = r != "", true
	case opPeekReady:
		ok = exact("peek-ready")
	case opPeekDelayed:
		ok = exact("peek-delayed")
	case opPeekBuried:
		ok = exact("peek-buried")
	case opReserve:
		ok = exact("reserve")
		c.timeout = -1
	case opStats:
		ok = exact("stats")
	case opListTubes:
		ok = exact("list-tubes")
	case opListTubeUsed:
		ok = exact("list-tube-used")
	case opListTubesWatched:
		ok = exact("list-tubes-watched")
	case opQuit:
		ok = true
	case opPeekJob:
		c.id, _, ok = readU64(rest("peek "), true)
	case opReserveJob:
		c.id, _, ok = readU64(rest("reserve-job "), true)
	case opDelete:
		c.id, _, ok = readU64(rest("delete "), true)
	case opKickJob:
		c.id, _, ok = readU64(rest("kick-job "), true)
	case opTouch:
		c.id, _, ok = readU64(rest("touch "), true)
	case opStatsJob:
		c.id, _, ok = readU64(rest("stats-job "), true)
	case opRelease:
		var r string
		if c.id, r, ok = readU64(rest("release "), false); ok {
			if c.pri, r, ok = readU32(r, false); ok {
				c.delay, _, ok = readU32(r, true)
			}
		}
	case opBury:
		var r string
		if c.id, r, ok = readU64(rest("bury "), false); ok {
			c.pri, _, ok = readU32(r, true)
		}
	case opReserveTimeout:
		var v int64
		v, _, ok = strtol(rest("reserve-with-timeout "))
		c.timeout = int32(v) // C's conversion of a long to an int keeps the low 32 bits
	case opKick:
		var v uint64
		v, ok = strtoul(rest("kick "))
		c.bound = uint32(v)
	case opUse, opWatch, opIgnore, opStatsTube:
		name := s[strings.IndexByte(s, ' ')+1:]
		c.tube, ok = name, validTube(name)
	case opPauseTube:
		r := strings.TrimLeft(rest("pause-tube"), " ")
		n := nameLen(r)
		if n == 0 {
			return command{op: c.op, bad: true}
		}
		c.tube = r[:n]
		if c.delay, _, ok = readU32(r[n:], true); !ok {
			return command{op: c.op, bad: true}
		}
		// beanstalkd counts the command before it checks the name's length and first byte.
		c.counted = true
		ok = validTube(c.tube)
	}
	if !ok {
		return command{op: c.op, bad: true, counted: c.counted}
	}
	c.counted = true
	return c
}

// readU64 reads a decimal number after optional spaces, as beanstalkd's read_u64: a digit
// must come first and the value must fit in 64 bits. With end, nothing may follow it.
func readU64(s string, end bool) (uint64, string, bool) {
	s = strings.TrimLeft(s, " ")
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, s, false
	}
	var v uint64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, s, false // strtoumax: ERANGE
		}
		v = v*10 + d
	}
	if end && i != len(s) {
		return 0, s, false
	}
	return v, s[i:], true
}

// readU32 is readU64 for a value that must fit in 32 bits.
func readU32(s string, end bool) (uint32, string, bool) {
	v, r, ok := readU64(s, end)
	if !ok || v > math.MaxUint32 {
		return 0, s, false
	}
	return uint32(v), r, true
}

// cSpace is C's isspace.
func cSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// strtol mimics C's strtol in base 10: leading white space, a sign, digits. It fails only
// on overflow (ERANGE); no digits read as 0 with nothing consumed (glibc sets no error).
func strtol(s string) (int64, string, bool) {
	i, neg := cNumberStart(s)
	start := i
	var v uint64
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (limit-d)/10 {
			return 0, s, false // ERANGE
		}
		v = v*10 + d
	}
	if i == start {
		return 0, s, true
	}
	if neg {
		return -int64(v), s[i:], true // v == 2^63 wraps to MinInt64, as wanted
	}
	return int64(v), s[i:], true
}

// cNumberStart skips what C's strtol and strtoul skip before the digits: white space and
// a sign. It returns the index of the first digit and whether the sign was '-'.
func cNumberStart(s string) (int, bool) {
	i := 0
	for i < len(s) && cSpace(s[i]) {
		i++
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		return i + 1, s[i] == '-'
	}
	return i, false
}

// strtoul mimics beanstalkd's use of C's strtoul in base 10 for kick: it fails when no digit
// is read or on overflow; a minus sign negates modulo 2^64, as C does.
func strtoul(s string) (uint64, bool) {
	i, neg := cNumberStart(s)
	start := i
	var v uint64
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if i == start {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// nameChar reports whether c may appear in a tube name.
func nameChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-+/;.$_()", c) >= 0
}

// nameLen is C's strspn(s, NAME_CHARS).
func nameLen(s string) int {
	i := 0
	for i < len(s) && nameChar(s[i]) {
		i++
	}
	return i
}

// validTube reports whether s is a tube name: 1 to 200 name characters, not starting
// with '-'.
func validTube(s string) bool {
	return len(s) > 0 && len(s) <= maxTubeName && nameLen(s) == len(s) && s[0] != '-'
}

// lineReader reads command lines the way beanstalkd does. beanstalkd reads a command into
// a 224-byte buffer and looks for the line end at the first '\r' only: when that '\r' is not
// followed by '\n', or the buffer fills first, the line is too long; it then throws input
// away, one 224-byte window at a time, until a window holds a line end, and answers
// BAD_FORMAT. Reproducing that window by window gives the same answers as beanstalkd for
// any input, and never holds more than 224 bytes of a line.
type lineReader struct {
	r   *bufio.Reader
	win [lineMax]byte
}

// next returns the next command line without its "\r\n". tooLong is set, with a nil line,
// when the line overflowed and has been discarded up to its end. The line is valid until the
// next call.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	n := 0   // bytes in the window
	cr := -1 // position of the window's first '\r'
	for {
		if cr >= 0 && cr+1 < n {
			// The first '\r' is not followed by '\n': no line end in this window.
			if n == lineMax {
				tooLong, n, cr = true, 0, -1
				continue
			}
			// Throw away up to the end of the window.
			k, err := lr.r.Discard(min(max(lr.r.Buffered(), 1), lineMax-n))
			n += k
			if err != nil {
				return nil, false, err
			}
			continue
		}
		if n == lineMax {
			tooLong, n, cr = true, 0, -1
			continue
		}
		if cr >= 0 { // cr == n-1: the next byte decides
			b, err := lr.r.ReadByte()
			if err != nil {
				return nil, false, err
			}
			lr.win[n] = b
			n++
			if b == '\n' {
				if tooLong {
					return nil, true, nil
				}
				return lr.win[:cr], false, nil
			}
			continue
		}
		want := min(max(lr.r.Buffered(), 1), lineMax-n)
		chunk, err := lr.r.Peek(want)
		if len(chunk) == 0 {
			return nil, false, err
		}
		i := bytes.IndexByte(chunk, '\r')
		if i >= 0 && i+1 < len(chunk) && chunk[i+1] == '\n' {
			copy(lr.win[n:], chunk[:i+2])
			lr.r.Discard(i + 2)
			if tooLong {
				return nil, true, nil
			}
			return lr.win[:n+i], false, nil
		}
		copy(lr.win[n:], chunk)
		lr.r.Discard(len(chunk))
		if i >= 0 {
			cr = n + i
		}
		n += len(chunk)
	}
}
