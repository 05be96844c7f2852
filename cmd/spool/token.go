package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spoolq/spool"
	"github.com/spoolq/spool/auth"
)

func (c *cli) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens: permissions per queue pattern",
		Long: `Manage API tokens (admin on every queue needed; see docs/security.md).

A token holds grants QUEUE_PATTERN=PERM[,PERM...]: a queue name or a prefix followed by *
("email*", "*" for every queue), and permissions among enqueue, work (reserve, ack, fail,
touch, release, bury), read (peek, job status, statistics) and admin (pause, resume, kick,
purge, delete, queue settings; on "*" also schedules and tokens).

Once a token exists (or the server has a bootstrap admin token), every request needs one:
--token or $SPOOL_TOKEN.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.tokenCreateCmd(), c.tokenListCmd(), c.tokenRevokeCmd())
	return cmd
}

func (c *cli) tokenCreateCmd() *cobra.Command {
	var (
		name   string
		grants []string
	)
	cmd := &cobra.Command{
		Use:   "create --grant PATTERN=PERMS [--grant ...] [--name NAME]",
		Short: "Create a token; its secret is printed once, on stdout",
		Example: `  spool token create --name mailer --grant 'email*=enqueue,work'
  spool token create --name ops --grant '*=read,admin'`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(grants) == 0 {
				return usageErrorf("at least one --grant is required, e.g. --grant 'email*=enqueue,work'")
			}
			gs := make([]spool.Grant, len(grants))
			for i, s := range grants {
				g, err := auth.ParseGrant(s)
				if err != nil {
					return usageErrorf("--grant: %v", err)
				}
				gs[i].Queues = g.Queues
				for _, p := range g.Perms {
					gs[i].Perms = append(gs[i].Perms, string(p))
				}
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			t, err := cl.CreateToken(cmd.Context(), name, gs)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(t)
			}
			fmt.Fprintln(c.stdout, t.Secret)
			fmt.Fprintf(c.stderr, "token %s created; its secret (above) is shown this once\n", t.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "a name to tell the token by (who or what uses it)")
	cmd.Flags().StringArrayVar(&grants, "grant", nil, "QUEUE_PATTERN=PERM[,PERM...] (repeatable)")
	return cmd
}

func (c *cli) tokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tokens (never their secrets)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ts, err := cl.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if c.json {
				if ts == nil {
					ts = []*spool.Token{}
				}
				return c.printJSON(map[string]any{"tokens": ts})
			}
			if len(ts) == 0 {
				fmt.Fprintln(c.stderr, "no tokens")
				return nil
			}
			now := time.Now()
			tw := c.table()
			fmt.Fprintln(tw, "ID\tNAME\tGRANTS\tCREATED")
			for _, t := range ts {
				var gs []string
				for _, g := range t.Grants {
					gs = append(gs, g.Queues+"="+strings.Join(g.Perms, ","))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, orDash(t.Name), strings.Join(gs, " "), fmtAge(t.CreatedAt, now))
			}
			return tw.Flush()
		},
	}
}

func (c *cli) tokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID...",
		Short: "Revoke tokens: every server refuses them from then on",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, ids []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := cl.RevokeToken(cmd.Context(), id); err != nil {
					return err
				}
				if !c.json {
					fmt.Fprintf(c.stderr, "token %s revoked\n", id)
				}
			}
			if c.json {
				return c.printJSON(map[string]any{"revoked": ids})
			}
			return nil
		},
	}
}
