package beanstalk

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want command
	}{
		{"put 1 2 3 4", command{op: opPut, counted: true, pri: 1, delay: 2, ttr: 3, size: 4}},
		{"put  1  2  3  4", command{op: opPut, counted: true, pri: 1, delay: 2, ttr: 3, size: 4}},
		{"put 4294967295 4294967295 4294967295 4294967295", command{op: opPut, counted: true, pri: 1<<32 - 1, delay: 1<<32 - 1, ttr: 1<<32 - 1, size: 1<<32 - 1}},
		{"put 1 2 3 4 x", command{op: opPut, counted: true, pri: 1, delay: 2, ttr: 3, size: 4, garbage: true}},
		{"put 1 2 3 4x", command{op: opPut, counted: true, pri: 1, delay: 2, ttr: 3, size: 4, garbage: true}},
		{"put 1 2 3 4 ", command{op: opPut, counted: true, pri: 1, delay: 2, ttr: 3, size: 4, garbage: true}},
		{"put 1 2 3", command{op: opPut, bad: true}},
		{"put 1\t2 3 4", command{op: opPut, bad: true}},
		{"put +1 2 3 4", command{op: opPut, bad: true}},
		{"put 4294967296 2 3 4", command{op: opPut, bad: true}},
		{"put", command{op: opUnknown}},
		{"reserve", command{op: opReserve, counted: true, timeout: -1}},
		{"reserve ", command{op: opReserve, bad: true}},
		{"reserve-with-timeout 5", command{op: opReserveTimeout, counted: true, timeout: 5}},
		{"reserve-with-timeout -1", command{op: opReserveTimeout, counted: true, timeout: -1}},
		{"reserve-with-timeout \t+7xyz", command{op: opReserveTimeout, counted: true, timeout: 7}},
		{"reserve-with-timeout x", command{op: opReserveTimeout, counted: true, timeout: 0}},
		{"reserve-with-timeout 4294967297", command{op: opReserveTimeout, counted: true, timeout: 1}},
		{"reserve-with-timeout 9223372036854775807", command{op: opReserveTimeout, counted: true, timeout: -1}},
		{"reserve-with-timeout 9223372036854775808", command{op: opReserveTimeout, bad: true}},
		{"reserve-with-timeout -9223372036854775808", command{op: opReserveTimeout, counted: true, timeout: 0}},
		{"reserve-with-timeout -9223372036854775809", command{op: opReserveTimeout, bad: true}},
		{"reserve-with-timeout", command{op: opReserve, bad: true}},
		{"reserve-job 12", command{op: opReserveJob, counted: true, id: 12}},
		{"reserve-job", command{op: opReserve, bad: true}},
		{"delete 18446744073709551615", command{op: opDelete, counted: true, id: 1<<64 - 1}},
		{"delete 18446744073709551616", command{op: opDelete, bad: true}},
		{"delete 1 ", command{op: opDelete, bad: true}},
		{"delete  1", command{op: opDelete, counted: true, id: 1}},
		{"release 1 2 3", command{op: opRelease, counted: true, id: 1, pri: 2, delay: 3}},
		{"release 1 2 3 ", command{op: opRelease, bad: true}},
		{"release 1 2", command{op: opRelease, bad: true}},
		{"bury 1 2", command{op: opBury, counted: true, id: 1, pri: 2}},
		{"bury 1", command{op: opBury, bad: true}},
		{"kick 5", command{op: opKick, counted: true, bound: 5}},
		{"kick  5 and more", command{op: opKick, counted: true, bound: 5}},
		{"kick -1", command{op: opKick, counted: true, bound: 1<<32 - 1}},
		{"kick 4294967301", command{op: opKick, counted: true, bound: 5}},
		{"kick 18446744073709551616", command{op: opKick, bad: true}},
		{"kick -", command{op: opKick, bad: true}},
		{"kick ", command{op: opKick, bad: true}},
		{"kick-job 3", command{op: opKickJob, counted: true, id: 3}},
		{"touch 3", command{op: opTouch, counted: true, id: 3}},
		{"peek 3", command{op: opPeekJob, counted: true, id: 3}},
		{"peek", command{op: opUnknown}},
		{"peek-ready", command{op: opPeekReady, counted: true}},
		{"peek-readyx", command{op: opPeekReady, bad: true}},
		{"peek-delayed", command{op: opPeekDelayed, counted: true}},
		{"peek-buried", command{op: opPeekBuried, counted: true}},
		{"stats", command{op: opStats, counted: true}},
		{"stats-job 1", command{op: opStatsJob, counted: true, id: 1}},
		{"stats-job", command{op: opStats, bad: true}},
		{"stats-tube a", command{op: opStatsTube, counted: true, tube: "a"}},
		{"stats-tube", command{op: opStats, bad: true}},
		{"use a", command{op: opUse, counted: true, tube: "a"}},
		{"use ", command{op: opUse, bad: true}},
		{"use -a", command{op: opUse, bad: true}},
		{"use a-", command{op: opUse, counted: true, tube: "a-"}},
		{"use a b", command{op: opUse, bad: true}},
		{"use " + strings.Repeat("t", 200), command{op: opUse, counted: true, tube: strings.Repeat("t", 200)}},
		{"use " + strings.Repeat("t", 201), command{op: opUse, bad: true}},
		{"watch x", command{op: opWatch, counted: true, tube: "x"}},
		{"ignore x", command{op: opIgnore, counted: true, tube: "x"}},
		{"list-tubes", command{op: opListTubes, counted: true}},
		{"list-tube-used", command{op: opListTubeUsed, counted: true}},
		{"list-tubes-watched", command{op: opListTubesWatched, counted: true}},
		{"list-tubes-watched ", command{op: opListTubesWatched, bad: true}},
		{"quit", command{op: opQuit, counted: true}},
		{"quitter", command{op: opQuit, counted: true}},
		{"pause-tube a 5", command{op: opPauseTube, counted: true, tube: "a", delay: 5}},
		{"pause-tubea 5", command{op: opPauseTube, counted: true, tube: "a", delay: 5}},
		{"pause-tube -a 5", command{op: opPauseTube, bad: true, counted: true}},
		{"pause-tube a", command{op: opPauseTube, bad: true}},
		{"pause-tube a 5 ", command{op: opPauseTube, bad: true}},
		{"pause-tube  5", command{op: opPauseTube, bad: true}},
		{"pause-tube", command{op: opPauseTube, bad: true}},
		{"", command{op: opUnknown}},
		{"PUT 1 2 3 4", command{op: opUnknown}},
		{"stats\x00", command{bad: true}},
	} {
		got := parseCommand([]byte(tc.line))
		if got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.line, got, tc.want)
		}
	}
}

// FuzzCommand checks that any line parses without panic, that what parses names a valid
// tube, and that a parsed command written back in canonical form parses the same.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{
		"put 1 2 3 4", "reserve", "reserve-with-timeout -5", "reserve-job 1", "delete 1",
		"release 1 2 3", "bury 1 2", "kick 3", "kick-job 3", "touch 1", "peek 9", "peek-ready",
		"peek-delayed", "peek-buried", "stats", "stats-job 2", "stats-tube default", "use a",
		"watch b", "ignore c", "list-tubes", "list-tube-used", "list-tubes-watched", "quit",
		"pause-tube a 1", "put 1 2 3 4 x", "kick -1", "\x00", "use \xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c := parseCommand(line)
		if c.op >= numOps {
			t.Fatalf("op %d out of range", c.op)
		}
		if c.bad {
			return
		}
		switch c.op {
		case opUse, opWatch, opIgnore, opStatsTube, opPauseTube:
			if !validTube(c.tube) {
				t.Fatalf("%q: parsed an invalid tube %q", line, c.tube)
			}
		}
		canon := canonical(c)
		if canon == "" {
			return
		}
		c2 := parseCommand([]byte(canon))
		if c2 != c {
			t.Fatalf("%q parsed as %+v; its canonical form %q parses as %+v", line, c, canon, c2)
		}
	})
}

// canonical writes a parsed command back as a line, "" for commands with no canonical form.
func canonical(c command) string {
	switch c.op {
	case opPut:
		g := ""
		if c.garbage {
			g = " x"
		}
		return fmt.Sprintf("put %d %d %d %d%s", c.pri, c.delay, c.ttr, c.size, g)
	case opReserve:
		return "reserve"
	case opReserveTimeout:
		return fmt.Sprintf("reserve-with-timeout %d", c.timeout)
	case opReserveJob:
		return fmt.Sprintf("reserve-job %d", c.id)
	case opDelete:
		return fmt.Sprintf("delete %d", c.id)
	case opRelease:
		return fmt.Sprintf("release %d %d %d", c.id, c.pri, c.delay)
	case opBury:
		return fmt.Sprintf("bury %d %d", c.id, c.pri)
	case opKick:
		return fmt.Sprintf("kick %d", c.bound)
	case opKickJob:
		return fmt.Sprintf("kick-job %d", c.id)
	case opTouch:
		return fmt.Sprintf("touch %d", c.id)
	case opPeekJob:
		return fmt.Sprintf("peek %d", c.id)
	case opStatsJob:
		return fmt.Sprintf("stats-job %d", c.id)
	case opStatsTube:
		return "stats-tube " + c.tube
	case opUse:
		return "use " + c.tube
	case opWatch:
		return "watch " + c.tube
	case opIgnore:
		return "ignore " + c.tube
	case opPauseTube:
		return fmt.Sprintf("pause-tube %s %d", c.tube, c.delay)
	case opPeekReady:
		return "peek-ready"
	case opPeekDelayed:
		return "peek-delayed"
	case opPeekBuried:
		return "peek-buried"
	case opStats:
		return "stats"
	case opListTubes:
		return "list-tubes"
	case opListTubeUsed:
		return "list-tube-used"
	case opListTubesWatched:
		return "list-tubes-watched"
	case opQuit:
		return "quit"
	}
	return ""
}

// cModel is beanstalkd 1.12's command reading (conn_process_io's STATE_WANT_COMMAND and
// STATE_WANT_ENDLINE, scan_line_end, fill_extra_data) transcribed from C, fed by reads of
// the sizes given. It returns what lineReader must return: the lines, with "" and true for a
// too-long line.
type cLine struct {
	line    string
	tooLong bool
}

func cModel(input []byte, reads []int) []cLine {
	var out []cLine
	cmd := make([]byte, lineMax)
	cmdRead := 0
	endline := false
	pos := 0
	scan := func() int { // scan_line_end(cmd, cmdRead)
		if cmdRead < 1 {
			return 0
		}
		i := bytes.IndexByte(cmd[:cmdRead-1], '\r')
		if i < 0 || cmd[i+1] != '\n' {
			return 0
		}
		return i + 2
	}
	consume := func(n int) { // fill_extra_data without a job
		copy(cmd, cmd[n:cmdRead])
		cmdRead -= n
	}
	for r := 0; ; r++ {
		// h_conn: process complete commands already buffered.
		for !endline {
			n := scan()
			if n == 0 {
				break
			}
			out = append(out, cLine{line: string(cmd[:n-2])})
			consume(n)
		}
		if pos == len(input) {
			return out
		}
		want := 1
		if len(reads) > 0 {
			want = reads[r%len(reads)]
		}
		k := min(want, lineMax-cmdRead, len(input)-pos)
		copy(cmd[cmdRead:], input[pos:pos+k])
		pos += k
		cmdRead += k
		if n := scan(); n > 0 {
			if endline {
				out = append(out, cLine{tooLong: true})
				endline = false
				consume(n)
			}
			continue
		}
		if cmdRead == lineMax {
			cmdRead = 0
			endline = true
		}
	}
}

// goLines runs lineReader over input read in chunks of the given sizes.
func goLines(input []byte, reads []int) []cLine {
	lr := lineReader{r: bufio.NewReaderSize(&chunked{b: input, sizes: reads}, 64)}
	var out []cLine
	for {
		line, tooLong, err := lr.next()
		if err != nil {
			return out
		}
		out = append(out, cLine{line: string(line), tooLong: tooLong})
	}
}

type chunked struct {
	b     []byte
	sizes []int
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = max(c.sizes[c.i%len(c.sizes)], 1)
		c.i++
	}
	n = min(n, len(p), len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func TestLineReaderMatchesBeanstalkd(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 223)
	for _, in := range []string{
		"stats\r\nlist-tubes\r\n",
		"a\rb\r\nc\r\n",
		strings.Repeat("y", 222) + "\r\nok\r\n",
		long + "\r\nlist-tube-used\r\nuse a\r\n",
		strings.Repeat("z", 1000) + "\r\nnext\r\n",
		"\r\r\n\n\r\n",
	} {
		for _, reads := range [][]int{nil, {1}, {7}, {224}, {3, 500, 1}} {
			want := cModel([]byte(in), reads)
			got := goLines([]byte(in), reads)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%.30q reads %v:\n got %+v\nwant %+v", in, reads, got, want)
			}
		}
	}
}

// FuzzLineReader checks lineReader against the transcription of beanstalkd's C code, with
// input arriving in arbitrary pieces.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("stats\r\nput 1 2 3 4\r\n"), byte(1), byte(200))
	f.Add([]byte(strings.Repeat("x", 223)+"\r\nnext\r\n"), byte(7), byte(3))
	f.Add([]byte("a\rb\r\n\r\n"), byte(224), byte(1))
	f.Fuzz(func(t *testing.T, in []byte, r1, r2 byte) {
		reads := []int{int(r1) + 1, int(r2) + 1}
		want := cModel(in, reads)
		got := goLines(in, reads)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%q reads %v:\n got %+v\nwant %+v", in, reads, got, want)
		}
		for _, l := range got {
			if len(l.line) > lineMax-2 {
				t.Fatalf("line of %d bytes", len(l.line))
			}
		}
	})
}
