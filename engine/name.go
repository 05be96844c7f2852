package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// MaxQueueName is the longest queue name, as beanstalkd's tube names.
const MaxQueueName = 200

// ValidateQueueName checks a queue name against the beanstalkd tube alphabet:
// letters, digits and - + / ; . $ _ ( ), not starting with '-'.
func ValidateQueueName(name string) error {
	if name == "" {
		return invalid("queue", "must not be empty")
	}
	if len(name) > MaxQueueName {
		return invalid("queue", "longer than %d bytes", MaxQueueName)
	}
	if name[0] == '-' {
		return invalid("queue", "must not start with '-'")
	}
	for i := 0; i < len(name); i++ {
		if !queueChar(name[i]) {
			return invalid("queue", "character %q not allowed (letters, digits and - + / ; . $ _ ( ))", name[i])
		}
	}
	return nil
}

func queueChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-+/;.$_()", c) >= 0
}

// escapeName turns a valid queue name into a token usable in NATS subjects, stream and
// consumer names and KV keys: letters, digits and '-' stay, every other byte becomes _XX.
func escapeName(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 8)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02X", c)
	}
	return b.String()
}

// unescapeName reverses escapeName.
func unescapeName(esc string) (string, error) {
	if !strings.Contains(esc, "_") {
		return esc, nil
	}
	var b strings.Builder
	for i := 0; i < len(esc); i++ {
		if esc[i] != '_' {
			b.WriteByte(esc[i])
			continue
		}
		if i+2 >= len(esc) {
			return "", fmt.Errorf("bad escape in %q", esc)
		}
		v, err := strconv.ParseUint(esc[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q: %w", esc, err)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// maxLevels is how many distinct priorities a queue keeps in exact order. Each priority in
// use has its own ready level (subject and consumer), levels are reserved strictly by
// priority, and the jobs of one level are FIFO. Past maxLevels, a new priority shares the
// level of the nearest lower priority in use (the lowest level when none is lower): its
// jobs are FIFO with that level's. Levels are never removed.
const maxLevels = 64

// Subjects and names. Every queue has its own stream. A delayed, buried or held job's subject
// ends with its id, so such a job is found with the filter spool.q.<queue>.*.*.<id>. Ready jobs
// share one subject per priority level, spool.q.<queue>.ready.<priority>, without the id: a level
// consumer then filters on one literal subject, which JetStream finds directly, where a
// wildcard filter made every pull match the subjects of all the band's pending jobs (a cost
// that grew with the backlog). A ready job is found by id through its record (findMsg).
const (
	jobsStream    = "SPOOL_JOBS"
	jobsPrefix    = "spool.j."
	uniquePrefix  = "spool.u."
	statsStream   = "SPOOL_STATS"
	statsPrefix   = "spool.c."
	queuesBucket  = "spool_queues"
	notifyPrefix  = "spool.n."
	queueStreamPx = "SPOOL_Q_"
)

type names struct {
	esc string
}

func queueNames(queue string) names { return names{esc: escapeName(queue)} }

// maxStreamEsc keeps stream names within JetStream's limit of 255 bytes (they are file names).
const maxStreamEsc = 200

// stream is the queue's stream name. A name whose escaped form is too long for a stream name
// (up to 600 bytes for 200 bytes of punctuation) keeps a prefix and a hash of the whole.
func (n names) stream() string {
	if len(n.esc) <= maxStreamEsc {
		return queueStreamPx + n.esc
	}
	sum := sha256.Sum256([]byte(n.esc))
	return queueStreamPx + n.esc[:maxStreamEsc-33] + "-" + hex.EncodeToString(sum[:16])
}
func (n names) all() string { return "spool.q." + n.esc + ".>" }
func (n names) state(s State) string {
	return "spool.q." + n.esc + "." + string(s) + ".>"
}

// subject is the subject of job id in state s at priority level b; for StateReady, the
// level's ready subject, the same for all its jobs.
func (n names) subject(s State, b int, id uint64) string {
	if s == StateReady {
		return n.ready(b)
	}
	return "spool.q." + n.esc + "." + string(s) + "." + strconv.Itoa(b) + "." + strconv.FormatUint(id, 10)
}

// ready is level b's ready subject, and the filter of its consumer.
func (n names) ready(b int) string {
	return "spool.q." + n.esc + ".ready." + strconv.Itoa(b)
}
func (n names) anyState(id uint64) string {
	return "spool.q." + n.esc + ".*.*." + strconv.FormatUint(id, 10)
}
func (n names) notify(b int) string { return notifyPrefix + n.esc + "." + strconv.Itoa(b) }

func consumerName(b int) string { return "ready-" + strconv.Itoa(b) }

func jobSubject(id uint64) string { return jobsPrefix + strconv.FormatUint(id, 10) }

// subjectState parses the state out of a queue message subject.
func subjectState(subject string) State {
	// spool.q.<esc>.<state>.<band>[.<id>]
	parts := strings.Split(subject, ".")
	if len(parts) != 5 && len(parts) != 6 {
		return ""
	}
	return State(parts[3])
}

// subjectID parses the job id out of a queue message subject; ok is false for a ready
// subject, which has none.
func subjectID(subject string) (id uint64, ok bool) {
	if strings.Count(subject, ".") != 5 {
		return 0, false
	}
	id, err := strconv.ParseUint(subject[strings.LastIndexByte(subject, '.')+1:], 10, 64)
	return id, err == nil
}
