package bsimport

// Counts are the outcomes of one state's jobs of a tube.
type Counts struct {
	// Moved: stored in spool, then deleted from beanstalkd.
	Moved int `json:"moved"`
	// Skipped: already in spool (an earlier run stored it and stopped before the delete):
	// deleted from beanstalkd, not stored again.
	Skipped int `json:"skipped"`
	// Failed: spool refused the job (its payload is over the server's limit, say); it stays
	// in beanstalkd. LastError says why.
	Failed int `json:"failed"`
	// Raced: stored in spool, but beanstalkd no longer had it to delete: a consumer of
	// beanstalkd took it meanwhile (a delay ran out, a kick, a lease that expired during
	// the store). The job may run on both sides.
	Raced int `json:"raced"`
	// Left: jobs not tried because a refused job blocks the state's queue in beanstalkd
	// (delayed and buried jobs are read in beanstalkd's order, from the head).
	Left int `json:"left"`
}

func (c *Counts) add(o Counts) {
	c.Moved += o.Moved
	c.Skipped += o.Skipped
	c.Failed += o.Failed
	c.Raced += o.Raced
	c.Left += o.Left
}

// Found counts a tube's jobs by state when the import reached it (beanstalkd's stats-tube).
type Found struct {
	Ready    int `json:"ready"`
	Delayed  int `json:"delayed"`
	Buried   int `json:"buried"`
	Reserved int `json:"reserved"`
}

// TubeReport is the outcome of one tube.
type TubeReport struct {
	Tube  string `json:"tube"`
	Found Found  `json:"found"`
	// PausedSeconds is the tube's remaining pause in beanstalkd (pause-time-left), carried
	// over to the spool queue; 0: not paused.
	PausedSeconds int    `json:"paused_seconds,omitempty"`
	Ready         Counts `json:"ready"`
	Delayed       Counts `json:"delayed"`
	Buried        Counts `json:"buried"`
	// Reserved counts the jobs that beanstalkd's workers held at the end: they are left
	// to them; a job they release comes back as ready and the next run moves it.
	Reserved  int    `json:"reserved"`
	LastError string `json:"last_error,omitempty"`
	Done      bool   `json:"done"` // every pass of the tube ran to its end
}

// Total sums the tube's counts over its states.
func (t *TubeReport) Total() Counts {
	var c Counts
	c.add(t.Ready)
	c.add(t.Delayed)
	c.add(t.Buried)
	return c
}

// Report is the outcome of an import.
type Report struct {
	From     string       `json:"from"`      // beanstalkd's address
	ServerID string       `json:"server_id"` // beanstalkd's process id string (stats "id")
	DryRun   bool         `json:"dry_run"`
	Tubes    []TubeReport `json:"tubes"`
	// Totals by state over every tube.
	Ready    Counts `json:"ready"`
	Delayed  Counts `json:"delayed"`
	Buried   Counts `json:"buried"`
	Reserved int    `json:"reserved"`
}

func (r *Report) sum() {
	r.Ready, r.Delayed, r.Buried, r.Reserved = Counts{}, Counts{}, Counts{}, 0
	for i := range r.Tubes {
		t := &r.Tubes[i]
		r.Ready.add(t.Ready)
		r.Delayed.add(t.Delayed)
		r.Buried.add(t.Buried)
		r.Reserved += t.Reserved
	}
}

// Total sums the counts over the states.
func (r *Report) Total() Counts {
	c := r.Ready
	c.add(r.Delayed)
	c.add(r.Buried)
	return c
}

// Complete reports whether the import moved every job it found, except those beanstalkd's
// workers held: nothing failed, raced or was left behind.
func (r *Report) Complete() bool {
	for i := range r.Tubes {
		t := &r.Tubes[i]
		c := t.Total()
		if !t.Done || c.Failed+c.Raced+c.Left > 0 {
			return false
		}
	}
	return true
}
