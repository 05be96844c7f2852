package beanstalk_test

// Side-by-side comparison with the real beanstalkd 1.12: the same scripted command
// sequences run against beanstalkd and against spool's front, and the replies must be the
// same once job ids are normalised (#1 is the first id a script sees, #2 the second ...) and
// the fields that describe the process (pid, rusage, hostname ...) are masked. Steps where
// spool differs on purpose carry the reason, which docs/beanstalkd.md also lists; their
// replies are logged, not compared.
//
// The test needs the beanstalkd binary (Debian/Ubuntu package "beanstalkd", version 1.12);
// it skips when it is not installed, and fails instead under CI=true (.ci/run installs it).
// BEANSTALKD=/path/to/beanstalkd picks another binary.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/beanstalk"
	"github.com/spoolq/spool/internal/beanstalkdtest"
)

// step is one action of a script.
type step struct {
	conn    int           // connection number (connections open on first use)
	send    string        // bytes to send; $1, $2 ... stand for the script's job ids
	replies int           // replies to read
	sleep   time.Duration // pause before the step
	closed  bool          // expect the server to close the connection
	hangup  bool          // close the connection
	halfClo bool          // shut down the connection's write side
	known   string        // a documented difference: replies are logged, not compared
}

// statsLag is how long spool's job totals (total-jobs, job-timeouts) may take to count a
// change: the engine adds them up once a second.
const statsLag = 1100 * time.Millisecond

// delayKept: beanstalkd keeps a job's last delay in stats-job after the delay is over; the
// engine forgets it when the job is kicked or reserved.
const delayKept = "stats-job delay is 0 once a delayed job was kicked or reserved"

// wholeSeconds: spool's delays end on a whole second, up to 1s after beanstalkd's, so
// time-left (and the age of a job that waited) may read one second more.
const wholeSeconds = "delays end on whole seconds: time-left and age may read 1s more"

// cmd sends one command line on connection c and reads one reply.
func cmd(c int, line string) step { return step{conn: c, send: line + "\r\n", replies: 1} }

// raw sends bytes and reads n replies.
func raw(c int, s string, n int) step { return step{conn: c, send: s, replies: n} }

func pause(d time.Duration) step { return step{sleep: d} }

// differs marks a step where spool answers otherwise on purpose.
func differs(s step, why string) step {
	s.known = why
	return s
}

type script struct {
	name  string
	steps []step
	// refHolds, when set, checks that beanstalkd's own replies follow protocol.txt where
	// beanstalkd is known not to always (timing under load); a run that does not is
	// repeated on a fresh beanstalkd rather than compared.
	refHolds func(replies []string) bool
}

func scripts() []script {
	big := strings.Repeat("b", 65536)
	max := strings.Repeat("m", 65535)
	return []script{
		{name: "basic", steps: []step{
			cmd(0, "put 0 0 60 5\r\nhello"),
			cmd(0, "peek $1"),
			cmd(0, "peek-ready"),
			cmd(0, "stats-job $1"),
			cmd(0, "reserve"),
			cmd(0, "stats-job $1"),
			cmd(0, "peek-ready"),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "delete $1"),
			cmd(0, "delete $1"),
			cmd(0, "peek $1"),
			cmd(0, "stats-job $1"),
			cmd(0, "put 5 0 10 0\r\n"),
			cmd(0, "reserve-with-timeout 1"),
			cmd(0, "delete $2"),
			cmd(0, "put 1 0 10 7\r\na\r\nb\x00\xffc"),
			cmd(0, "reserve"),
			cmd(0, "release $3 9 0"),
			cmd(0, "release $3 9 0"),
			cmd(0, "stats-job $3"),
			{conn: 0, send: "quit\r\n", closed: true},
		}},
		{name: "tubes", steps: []step{
			cmd(0, "list-tube-used"),
			cmd(0, "list-tubes-watched"),
			cmd(0, "list-tubes"),
			cmd(0, "use jobs.email"),
			cmd(0, "list-tube-used"),
			cmd(0, "watch a"),
			cmd(0, "watch a"),
			cmd(0, "watch b"),
			cmd(0, "watch c"),
			cmd(0, "ignore a"),
			cmd(0, "list-tubes-watched"),
			cmd(0, "ignore nosuch"),
			cmd(0, "ignore default"),
			cmd(0, "ignore b"),
			cmd(0, "ignore c"),
			cmd(0, "list-tubes-watched"),
			cmd(0, "list-tubes"),
			cmd(0, "put 0 0 10 1\r\nx"),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "watch jobs.email"),
			cmd(0, "reserve-with-timeout 0"),
			pause(statsLag),
			cmd(0, "stats-tube jobs.email"),
			cmd(0, "stats-tube default"),
			cmd(0, "stats-tube nosuch"),
			cmd(0, "use "+strings.Repeat("x", 200)),
			cmd(0, "use "+strings.Repeat("x", 201)),
			cmd(0, "use -a"),
			cmd(0, "use a-"),
			cmd(0, "use a b"),
			cmd(0, "use a*"),
			cmd(0, "use A-Za-z0-9+/;.$_()"),
			cmd(0, "watch "),
			cmd(0, "stats-tube -x"),
			cmd(1, "list-tubes-watched"),
			cmd(1, "stats-tube jobs.email"),
		}},
		{name: "release-bury-kick", steps: []step{
			cmd(0, "put 10 0 30 3\r\njob"),
			cmd(0, "reserve"),
			cmd(0, "bury $1 3"),
			cmd(0, "bury $1 3"),
			cmd(0, "peek-buried"),
			cmd(0, "stats-job $1"),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "put 1 3600 30 5\r\nlater"),
			cmd(0, "put 1 7200 30 6\r\nlater2"),
			cmd(0, "peek-delayed"),
			cmd(0, "kick 10"),
			cmd(0, "peek-buried"),
			cmd(0, "kick 1"),
			cmd(0, "kick 10"),
			cmd(0, "kick 10"),
			cmd(0, "stats-job $1"),
			differs(cmd(0, "stats-job $2"), delayKept),
			cmd(0, "kick-job $1"),
			cmd(0, "put 1 3600 30 1\r\nx"),
			cmd(0, "kick-job $4"),
			cmd(0, "kick-job $4"),
			cmd(0, "kick-job 999999999"),
			cmd(0, "kick 0"),
			cmd(0, "reserve"),
			cmd(0, "reserve"),
			cmd(0, "reserve"),
			cmd(0, "reserve"),
			cmd(0, "release $1 5 3600"),
			differs(cmd(0, "stats-job $1"), wholeSeconds),
			cmd(0, "peek-delayed"),
			cmd(0, "kick 5"),
			cmd(0, "bury $2 0"),
			cmd(0, "bury $3 0"),
			cmd(0, "kick -1"),
			cmd(0, "delete $4"),
			cmd(0, "use other"),
			cmd(0, "kick 5"),
		}},
		{name: "delays", steps: []step{
			cmd(0, "put 0 1 30 1\r\nd"),
			differs(cmd(0, "stats-job $1"), wholeSeconds),
			cmd(0, "peek-ready"),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "reserve-with-timeout 5"),
			cmd(0, "release $1 0 1"),
			differs(cmd(0, "stats-job $1"), wholeSeconds),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "reserve-with-timeout 5"),
			cmd(0, "delete $1"),
			cmd(0, "put 0 300 30 1\r\na"),
			cmd(0, "put 0 100 30 1\r\nb"),
			cmd(0, "put 0 200 30 1\r\nc"),
			cmd(0, "peek-delayed"),
			cmd(0, "use elsewhere"),
			cmd(0, "peek-delayed"),
			cmd(0, "peek $3"),
		}},
		{name: "priorities", steps: []step{
			cmd(0, "put 100 0 10 1\r\na"),
			cmd(0, "put 0 0 10 1\r\nb"),
			cmd(0, "put 4294967295 0 10 1\r\nc"),
			cmd(0, "put 2 0 10 1\r\nd"),
			cmd(0, "put 100 0 10 1\r\ne"),
			cmd(0, "put 1024 0 10 1\r\nf"),
			pause(statsLag),
			cmd(0, "stats-tube default"),
			cmd(0, "peek-ready"), cmd(0, "reserve"),
			cmd(0, "peek-ready"), cmd(0, "reserve"),
			cmd(0, "peek-ready"), cmd(0, "reserve"),
			cmd(0, "peek-ready"), cmd(0, "reserve"),
			cmd(0, "peek-ready"), cmd(0, "reserve"),
			cmd(0, "peek-ready"), cmd(0, "reserve"),
			cmd(0, "peek-ready"),
			cmd(0, "put 6 0 10 1\r\ng"),
			cmd(0, "put 5 0 10 1\r\nh"),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "put 100 0 10 1\r\ni"),
			cmd(0, "put 64 0 10 1\r\nj"),
			cmd(0, "put 65 0 10 1\r\nk"),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "reserve-with-timeout 0"),
			cmd(0, "reserve-with-timeout 0"),
		}},
		{name: "priorities across tubes", steps: []step{
			cmd(0, "use two"),
			cmd(0, "put 5 0 10 1\r\na"),
			cmd(0, "use one"),
			cmd(0, "put 5 0 10 1\r\nb"),
			cmd(0, "put 3 0 10 1\r\nc"),
			cmd(0, "use two"),
			cmd(0, "put 5 0 10 1\r\nd"),
			cmd(1, "watch one"),
			cmd(1, "watch two"),
			cmd(1, "ignore default"),
			cmd(1, "reserve-with-timeout 1"),
			cmd(1, "reserve-with-timeout 1"),
			cmd(1, "reserve-with-timeout 1"),
			cmd(1, "reserve-with-timeout 1"),
		}},
		{name: "connections", steps: []step{
			cmd(0, "put 0 0 60 4\r\nmine"),
			cmd(0, "reserve"),
			cmd(1, "delete $1"),
			cmd(1, "release $1 0 0"),
			cmd(1, "bury $1 0"),
			cmd(1, "touch $1"),
			cmd(1, "kick-job $1"),
			cmd(1, "reserve-job $1"),
			cmd(1, "peek $1"),
			cmd(1, "reserve-with-timeout 0"),
			cmd(0, "touch $1"),
			cmd(0, "put 0 0 60 1\r\nr"),
			cmd(0, "put 0 100 60 1\r\nd"),
			cmd(1, "delete $2"),
			cmd(1, "delete $3"),
			cmd(0, "put 0 0 600 3\r\ntwo"),
			cmd(0, "reserve"),
			cmd(1, "reserve-with-timeout 0"),
			{conn: 0, hangup: true},
			cmd(1, "reserve-with-timeout 5"),
			cmd(1, "reserve-with-timeout 5"),
			cmd(1, "stats-job $1"),
			cmd(1, "stats-job $4"),
			cmd(2, "watch w"),
			{conn: 2, send: "reserve\r\n"},
			pause(300 * time.Millisecond),
			cmd(3, "stats-tube w"),
			cmd(3, "use w"),
			cmd(3, "put 0 0 10 4\r\nwake"),
			{conn: 2, replies: 1},
			cmd(3, "stats-tube w"),
			{conn: 4, send: "reserve\r\n"},
			pause(200 * time.Millisecond),
			{conn: 4, halfClo: true, replies: 1},
			{conn: 4, closed: true},
		}},
		{name: "ttr", refHolds: ttrHandedOver, steps: []step{
			cmd(0, "put 0 0 2 5\r\nshort"),
			cmd(0, "reserve"),
			cmd(0, "reserve"),
			cmd(0, "reserve-with-timeout 5"),
			// No touch here: in one CI run under load, beanstalkd 1.12 kept a job touched just
			// before reserved past its ttr (TIMED_OUT to this 10 s reserve, then RELEASED to
			// the holder), while on an idle machine it hands the job over after the ttr, as
			// spool does. touch is covered by the protocol tests.
			cmd(0, "reserve-with-timeout 0"),
			cmd(1, "reserve-with-timeout 10"),
			cmd(0, "release $1 0 0"),
			cmd(0, "touch $1"),
			cmd(1, "stats-job $1"),
			cmd(1, "put 0 0 0 4\r\nzero"),
			cmd(1, "stats-job $2"),
			cmd(1, "delete $1"),
			cmd(0, "put 0 0 1 4\r\nlate"),
			cmd(0, "reserve-job $3"),
			pause(1500 * time.Millisecond),
			cmd(0, "delete $3"),
		}},
		{name: "reserve-job", steps: []step{
			cmd(0, "use other"),
			cmd(0, "put 0 0 60 5\r\nready"),
			cmd(0, "put 0 3600 60 7\r\ndelayed"),
			cmd(0, "put 0 0 60 6\r\nburied"),
			cmd(0, "reserve-job $3"),
			cmd(0, "bury $3 9"),
			cmd(0, "reserve-job $1"),
			cmd(0, "reserve-job $1"),
			cmd(1, "reserve-job $1"),
			cmd(0, "reserve-job $2"),
			cmd(0, "reserve-job $3"),
			differs(cmd(0, "stats-job $2"), delayKept),
			cmd(0, "stats-job $3"),
			pause(statsLag),
			cmd(0, "stats-tube other"),
			cmd(0, "touch $1"),
			cmd(0, "delete $1"),
			cmd(0, "release $2 5 0"),
			cmd(0, "bury $3 5"),
			cmd(0, "peek-ready"),
			cmd(0, "peek-buried"),
			cmd(0, "reserve-job 999999999"),
			pause(300 * time.Millisecond),
			cmd(0, "stats-tube other"),
		}},
		{name: "pause", steps: []step{
			cmd(0, "pause-tube nosuch 1"),
			cmd(0, "put 0 0 10 1\r\np"),
			cmd(0, "pause-tube default 2"),
			cmd(0, "reserve-with-timeout 0"),
			pause(statsLag),
			cmd(0, "stats-tube default"),
			cmd(0, "reserve-with-timeout 10"),
			cmd(0, "watch idle"),
			cmd(0, "pause-tube idle 100"),
			cmd(0, "stats-tube idle"),
			cmd(0, "pause-tube idle 0"),
			cmd(0, "stats-tube idle"),
			cmd(0, "pause-tube idle"),
			cmd(0, "pause-tube idle x"),
			cmd(0, "pause-tube -idle 5"),
			cmd(0, "pause-tubeidle 5"),
			cmd(0, "pause-tube  idle  5"),
			cmd(0, "pause-tube idle 5 "),
		}},
		{name: "bad-input", steps: []step{
			cmd(0, ""),
			cmd(0, "foo"),
			cmd(0, "PUT 0 0 1 1"),
			cmd(0, "delete"),
			cmd(0, "delete x"),
			cmd(0, "delete 1 2"),
			cmd(0, "delete -1"),
			cmd(0, "delete 18446744073709551616"),
			cmd(0, "delete 18446744073709551615"),
			cmd(0, "delete  999999999"),
			cmd(0, "delete 999999999 "),
			cmd(0, "release 1 2"),
			cmd(0, "release 1 4294967296 0"),
			cmd(0, "bury 1"),
			cmd(0, "put 1 2 3"),
			cmd(0, "put -1 0 0 1"),
			cmd(0, "put 4294967296 0 0 1"),
			cmd(0, "put 1\t0 0 1"),
			cmd(0, "stats x"),
			cmd(0, "stats-job"),
			cmd(0, "stats-tube"),
			cmd(0, "reservex"),
			cmd(0, "reserve "),
			cmd(0, "reserve-job"),
			cmd(0, "reserve-with-timeout"),
			cmd(0, "peek"),
			cmd(0, "peek-ready "),
			cmd(0, "peek-buriedx"),
			cmd(0, "list-tubes x"),
			cmd(0, "list-tube-usedx"),
			cmd(0, "list-tubes-watched "),
			cmd(0, "kick"),
			cmd(0, "kick x"),
			cmd(0, "kick -"),
			cmd(0, "kick 99999999999999999999"),
			cmd(0, "kick 5 and more"),
			cmd(0, "kick 4294967301"),
			cmd(0, "reserve-with-timeout 99999999999999999999"),
			cmd(0, "reserve-with-timeout x"),
			cmd(0, "reserve-with-timeout \t0"),
			cmd(0, "reserve-with-timeout 4294967296"),
			cmd(0, "reserve-with-timeout -9223372036854775808"),
			cmd(0, "a\x00b"),
			cmd(0, "use de\x00fault"),
			cmd(0, strings.Repeat("x", 222)),
			cmd(0, strings.Repeat("x", 224)),
			cmd(0, strings.Repeat("x", 5000)),
			cmd(0, "use "+strings.Repeat("x", 220)),
			raw(0, "use a\rb"+strings.Repeat("x", 217)+"\r\n", 1),
			raw(0, strings.Repeat("x", 223)+"\r\nlist-tube-used\r\n", 1),
			cmd(0, "list-tube-used"),
			raw(0, "put 0 0 10 3\r\nabcXY", 1),
			raw(0, "put 0 0 10 3\r\nabc\n\r", 1),
			raw(0, "put 0 0 10 65536\r\n"+big+"\r\n", 1),
			raw(0, "put 0 0 10 65536 garbage\r\n"+big+"\r\n", 1),
			cmd(0, "put 0 0 10 1 garbage"),
			cmd(0, "put 0 0 10 1x"),
			raw(0, "put 0 0 10 65535\r\n"+max+"\r\n", 1),
			raw(0, "put 0 0 10 5\r\nhel", 0),
			pause(100 * time.Millisecond),
			raw(0, "lo\r\nstats-job $1\r\n", 2),
			cmd(0, "delete $1"),
			cmd(0, "delete $2"),
			pause(statsLag),
			cmd(0, "stats"),
			{conn: 0, send: "quitting\r\n", closed: true},
		}},
		{name: "pipelining", steps: []step{
			{conn: 0, send: "use p\r\nput 5 0 10 1\r\na\r\nput 2 0 10 1\r\nb\r\nwatch p\r\nignore default\r\nreserve\r\nreserve\r\nlist-tubes-watched\r\nquit\r\n", replies: 8, closed: true},
		}},
	}
}

// runScript runs a script against the server at addr and returns the normalised replies.
func runScript(t *testing.T, addr string, sc script) []string {
	t.Helper()
	conns := map[int]*client{}
	var ids []uint64
	idx := map[uint64]int{}
	norm := func(id uint64) string {
		if _, ok := idx[id]; !ok {
			ids = append(ids, id)
			idx[id] = len(ids)
		}
		return "#" + strconv.Itoa(idx[id])
	}
	subst := regexp.MustCompile(`\$(\d+)`)
	var out []string
	for i, st := range sc.steps {
		if st.sleep > 0 {
			time.Sleep(st.sleep)
		}
		if st.send == "" && st.replies == 0 && !st.closed && !st.hangup && !st.halfClo {
			continue
		}
		c := conns[st.conn]
		if c == nil {
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			c = &client{t: t, nc: nc, r: bufio.NewReaderSize(nc, 1<<17)}
			conns[st.conn] = c
		}
		if st.send != "" {
			c.send(subst.ReplaceAllStringFunc(st.send, func(m string) string {
				n, _ := strconv.Atoi(m[1:])
				if n < 1 || n > len(ids) {
					t.Fatalf("step %d: %s before the script has seen %d ids", i, m, n)
				}
				return strconv.FormatUint(ids[n-1], 10)
			}))
		}
		if st.hangup {
			c.nc.Close()
			continue
		}
		if st.halfClo {
			c.nc.(*net.TCPConn).CloseWrite()
		}
		for range st.replies {
			reply := readReply(c, norm)
			if st.known != "" {
				t.Logf("%s step %d (%.40q): %q [known difference: %s]", sc.name, i, st.send, reply, st.known)
				reply = "(not compared: " + st.known + ")"
			}
			out = append(out, fmt.Sprintf("%d %.60q -> %s", i, strings.TrimSuffix(st.send, "\r\n"), reply))
		}
		if st.closed {
			c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := c.r.ReadByte()
			out = append(out, fmt.Sprintf("%d closed: %v", i, err == io.EOF))
		}
	}
	return out
}

// masked are the stats fields that describe the process, not the protocol. version is not
// among them: spool reports the protocol level beanstalkd reports.
var masked = map[string]bool{
	"pid": true, "rusage-utime": true, "rusage-stime": true, "uptime": true,
	"binlog-oldest-index": true, "binlog-current-index": true, "binlog-records-migrated": true,
	"binlog-records-written": true, "binlog-max-size": true, "id": true, "hostname": true,
	"os": true, "platform": true, "file": true,
}

// spoolOnly are the fields spool adds to beanstalkd's (docs/beanstalkd.md, "Statistics").
var spoolOnly = map[string]bool{"spool-version": true}

// readReply reads one reply and normalises it.
func readReply(c *client, norm func(uint64) string) string {
	line := c.line()
	f := strings.Fields(line)
	switch {
	case len(f) == 2 && (f[0] == "INSERTED" || f[0] == "BURIED"):
		id, err := strconv.ParseUint(f[1], 10, 64)
		if err == nil {
			return f[0] + " " + norm(id)
		}
	case len(f) == 3 && (f[0] == "RESERVED" || f[0] == "FOUND"):
		id, err1 := strconv.ParseUint(f[1], 10, 64)
		n, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil {
			return fmt.Sprintf("%s %s %d %q", f[0], norm(id), n, c.data(n))
		}
	case len(f) == 2 && f[0] == "OK":
		n, err := strconv.Atoi(f[1])
		if err == nil {
			return "OK " + normYAML(c.data(n), norm)
		}
	}
	return line
}

// normYAML normalises a YAML body: ids, masked fields, and list order (spool lists tubes
// sorted, beanstalkd in the order of its hash table).
func normYAML(body string, norm func(uint64) string) string {
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	isList := len(lines) > 1 && strings.HasPrefix(lines[1], "- ")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		switch {
		case spoolOnly[k]:
			lines[i] = ""
		case masked[k]:
			lines[i] = k + ": *"
		case k == "id":
			if id, err := strconv.ParseUint(v, 10, 64); err == nil {
				lines[i] = k + ": " + norm(id)
			}
		}
	}
	lines = slices.DeleteFunc(lines, func(l string) bool { return l == "" })
	if isList {
		slices.Sort(lines[1:])
	}
	return strings.Join(lines, "|")
}

// ttrHandedOver checks the ttr script's reference run: the job whose ttr ran out goes to the
// other connection's waiting reserve. Under load beanstalkd 1.12 was seen keeping it
// reserved past its ttr (that reserve timed out after 10 s).
func ttrHandedOver(replies []string) bool {
	return len(replies) > 5 && strings.Contains(replies[5], "-> RESERVED ")
}

// clockFields are the fields of a reply that count seconds of the run so far (since a put,
// until a deadline set at an earlier step).
var clockFields = map[string]bool{"age": true, "time-left": true}

// sameWithin reports whether two normalised replies are the same but for clock fields that
// differ by at most slack seconds. Each run of a script takes its own time (a loaded machine
// stretches one and not the other): a clock field may differ by as many whole seconds as
// the longer run took; runs under a second compare exactly.
func sameWithin(w, g string, slack int64) bool {
	fw, fg := strings.Split(w, "|"), strings.Split(g, "|")
	if slack == 0 || len(fw) != len(fg) {
		return false
	}
	for i := range fw {
		if fw[i] == fg[i] {
			continue
		}
		kw, vw, ok1 := strings.Cut(fw[i], ": ")
		kg, vg, ok2 := strings.Cut(fg[i], ": ")
		nw, err1 := strconv.ParseInt(vw, 10, 64)
		ng, err2 := strconv.ParseInt(vg, 10, 64)
		if !ok1 || !ok2 || kw != kg || !clockFields[kw] || err1 != nil || err2 != nil || max(nw-ng, ng-nw) > slack {
			return false
		}
	}
	return true
}

func TestCompareWithBeanstalkd(t *testing.T) {
	bin := beanstalkdtest.Binary(t)
	for _, sc := range scripts() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel() // each script has a beanstalkd and a spool of its own
			ref := beanstalkdtest.Start(t, bin, "").Addr
			e := start(t, beanstalk.Options{})
			// beanstalkdtest.Start asked beanstalkd for its stats on one connection to see
			// it up: so does this, for total-connections and cmd-stats.
			c := e.dial(t)
			c.yaml("stats")
			c.nc.Close()
			start := time.Now()
			want := runScript(t, ref, sc)
			for try := 1; sc.refHolds != nil && !sc.refHolds(want); try++ {
				if try == 3 {
					t.Fatalf("beanstalkd broke protocol.txt in %d runs of the script: %q", try, want)
				}
				t.Logf("beanstalkd broke protocol.txt (timing): running the script again on a fresh one")
				start = time.Now()
				want = runScript(t, beanstalkdtest.Start(t, bin, "").Addr, sc)
			}
			took := time.Since(start)
			start = time.Now()
			got := runScript(t, e.addr, sc)
			slack := int64(max(took, time.Since(start)) / time.Second)
			for i := range max(len(want), len(got)) {
				var w, g string
				if i < len(want) {
					w = want[i]
				}
				if i < len(got) {
					g = got[i]
				}
				if w != g && !sameWithin(w, g, slack) {
					t.Errorf("reply %d differs:\nbeanstalkd: %s\n     spool: %s", i, w, g)
				}
			}
			if testing.Verbose() {
				t.Logf("%s: %d replies compared", sc.name, len(want))
			}
		})
	}
}
