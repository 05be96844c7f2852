package main

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolq/spool"
)

func (c *cli) clusterCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cluster [queue...]",
		Short: "Show the cluster: nodes, meta leader, each queue's replicas, leader and lag",
		Long: `Show the JetStream cluster under the server, as the node answering sees it: the nodes and
whether they are up, the meta leader (none: the node cannot reach a majority and takes no
writes), and each stream (the queues' eight shard streams, SPOOL_QS<k>_R<n> for queues made
with replicas other than the server's, a stream of its own for a queue made before shards, and
the others) with its replicas, leader and followers (lag in operations behind the leader).
Queues share shard streams: name queues to see which stream holds each, with its replicas and
leader.`,
		Args: args(cobra.MaximumNArgs(100)),
		RunE: func(cmd *cobra.Command, queues []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ci, err := cl.Cluster(cmd.Context(), queues...)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(ci)
			}
			tw := c.table()
			switch {
			case ci.External:
				fmt.Fprintf(tw, "engine:\texternal NATS (nodes not known to spool)\n")
			case ci.Name == "":
				fmt.Fprintf(tw, "engine:\tsingle node %s\n", ci.Node)
			default:
				leader := ci.MetaLeader
				if leader == "" {
					leader = "NONE (no majority reachable: no writes)"
				}
				fmt.Fprintf(tw, "cluster:\t%s (answered by %s)\n", ci.Name, ci.Node)
				fmt.Fprintf(tw, "meta leader:\t%s\n", leader)
				for _, n := range ci.Nodes {
					state := "up"
					if !n.Up {
						state = "DOWN"
					}
					fmt.Fprintf(tw, "node %s:\t%s\n", n.Name, state)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout)
			tw = c.table()
			fmt.Fprintln(tw, "STREAM\tQUEUE\tREPLICAS\tLEADER\tFOLLOWERS\tMESSAGES")
			for _, s := range ci.Streams {
				leader := s.Leader
				if leader == "" {
					leader = "NONE"
				}
				var fs []string
				for _, f := range s.Followers {
					st := "current"
					switch {
					case f.Offline:
						st = "offline"
					case !f.Current:
						st = fmt.Sprintf("lag %d", f.Lag)
					}
					fs = append(fs, f.Name+" "+st)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\n", s.Name, s.Queue, s.Replicas, leader, strings.Join(fs, ", "), s.Messages)
			}
			if len(queues) > 0 {
				fmt.Fprintln(tw)
				fmt.Fprintln(tw, "QUEUE\tSTREAM\tREPLICAS\tLEADER")
				for _, q := range queues {
					name := ci.QueueStreams[q]
					replicas, leader := "?", "?" // a stream made after the list was read
					if i := slices.IndexFunc(ci.Streams, func(s spool.ClusterStream) bool { return s.Name == name }); i >= 0 {
						replicas, leader = strconv.Itoa(ci.Streams[i].Replicas), cmp.Or(ci.Streams[i].Leader, "NONE")
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", q, name, replicas, leader)
				}
			}
			return tw.Flush()
		},
	}
}
