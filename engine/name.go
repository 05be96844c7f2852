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
	shardStreamPx = "SPOOL_QS"
)

// shardStream is the name of shard k's stream in set: SPOOL_QS<k> in the default set (0),
// SPOOL_QS<k>_R<set> in the set of set replicas.
func shardStream(k, set int) string {
	if set == 0 {
		return shardStreamPx + strconv.Itoa(k)
	}
	return shardStreamPx + strconv.Itoa(k) + "_R" + strconv.Itoa(set)
}

// names are a queue's names in JetStream. A queue lives either in a stream of its own
// (the first layout: subjects spool.q.<esc>...) or, since shards, in one of the shared shard
// streams (subjects spool.q<k>.<esc>... in the default set, spool.q<k>r<n>.<esc>... in the
// set of n replicas), with its consumers named after it there.
type names struct {
	esc string
	// tok is the subjects' second token: "q" in a stream of the queue's own, "q<k>" in
	// shard k of the default set, "q<k>r<n>" in shard k of the set of n replicas: one token
	// each, so that no stream's subjects overlap another's.
	tok    string
	shared bool
	strm   string
}

// queueNames are the names of a queue in a stream of its own.
func queueNames(queue string) names {
	n := names{esc: escapeName(queue), tok: "q"}
	n.strm = queueStreamPx + shortName(n.esc, maxStreamEsc)
	return n
}

// shardNames are the names of a queue in shard k of set (0: the default set, else the set
// of that many replicas; see shardSet).
func shardNames(queue string, k, set int) names {
	tok := "q" + strconv.Itoa(k)
	if set != 0 {
		tok += "r" + strconv.Itoa(set)
	}
	return names{esc: escapeName(queue), tok: tok, shared: true, strm: shardStream(k, set)}
}

// maxStreamEsc keeps stream names within JetStream's limit of 255 bytes (they are file names).
const maxStreamEsc = 200

// shortName returns esc, or when it is longer than max (up to 600 bytes for 200 bytes of
// punctuation) a prefix and a hash of the whole.
func shortName(esc string, max int) string {
	if len(esc) <= max {
		return esc
	}
	sum := sha256.Sum256([]byte(esc))
	return esc[:max-33] + "-" + hex.EncodeToString(sum[:16])
}

// stream is the name of the stream that holds the queue's messages.
func (n names) stream() string { return n.strm }

func (n names) prefix() string { return "spool." + n.tok + "." + n.esc + "." }

// prefixAll is the subject filter of every queue that shares the stream.
func (n names) prefixAll() string { return "spool." + n.tok + ".>" }
func (n names) all() string       { return n.prefix() + ">" }
func (n names) state(s State) string {
	return n.prefix() + string(s) + ".>"
}

// subject is the subject of job id in state s at priority level b; for StateReady, the
// level's ready subject, the same for all its jobs.
func (n names) subject(s State, b int, id uint64) string {
	if s == StateReady {
		return n.ready(b)
	}
	return n.prefix() + string(s) + "." + strconv.Itoa(b) + "." + strconv.FormatUint(id, 10)
}

// ready is level b's ready subject, and the filter of its consumer.
func (n names) ready(b int) string {
	return n.prefix() + "ready." + strconv.Itoa(b)
}
func (n names) anyState(id uint64) string {
	return n.prefix() + "*.*." + strconv.FormatUint(id, 10)
}
func (n names) notify(b int) string { return notifyPrefix + n.esc + "." + strconv.Itoa(b) }

// consumer is the name of level b's consumer. In a shard it starts with the queue's name:
// "_r" and "_c" never occur in an escaped name (an escape is '_' and two upper-case hex
// digits), so no two queues' consumers share a name.
func (n names) consumer(b int) string {
	if !n.shared {
		return "ready-" + strconv.Itoa(b)
	}
	return shortName(n.esc, maxConsumerEsc) + "_r" + strconv.Itoa(b)
}

// counter is the name of the consumer, never pulled, that counts the queue's jobs in
// state s (delayed or buried) and hands buried ones to kicks.
func (n names) counter(s State) string {
	if !n.shared {
		return string(s)
	}
	return shortName(n.esc, maxConsumerEsc) + "_c" + string(s)
}

// maxConsumerEsc keeps consumer names within JetStream's limit of 255 bytes.
const maxConsumerEsc = 200

func jobSubject(id uint64) string { return jobsPrefix + strconv.FormatUint(id, 10) }

// subjectState parses the state out of a queue message subject.
func subjectState(subject string) State {
	// spool.q[<shard>].<esc>.<state>.<band>[.<id>]
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
