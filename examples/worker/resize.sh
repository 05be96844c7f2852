#!/bin/sh
# A worker script for `spool work`: spool runs it once per job.
#
#   spool work --queue images -- ./examples/worker/resize.sh
#   spool enqueue images --type resize --payload '{"url":"https://example.com/a.png","width":128}'
#
# The job's payload arrives on standard input; the job itself in SPOOL_JOB_* variables.
# Exit 0 acknowledges the job, and what the script prints on standard output (JSON, or
# text kept as a JSON string) becomes the job's result. Any other exit status fails the
# attempt: the job is retried after the queue's backoff, or buried once its attempts are
# used up, with the end of standard error as its error.
set -eu

payload=$(cat)
echo "job $SPOOL_JOB_ID ($SPOOL_JOB_TYPE), attempt $SPOOL_JOB_ATTEMPT of $SPOOL_JOB_MAX_ATTEMPTS" >&2

case "$SPOOL_JOB_TYPE" in
resize)
	# A real worker would fetch and resize the image here; this one checks the payload.
	case "$payload" in
	*'"url"'*) ;;
	*)
		echo "payload has no url: $payload" >&2
		exit 1 # a failed attempt: retried, then buried
		;;
	esac
	printf '{"resized":true,"job":"%s"}\n' "$SPOOL_JOB_ID"
	;;
*)
	echo "unknown job type: $SPOOL_JOB_TYPE" >&2
	exit 2
	;;
esac
