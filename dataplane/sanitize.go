package dataplane

import (
	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/answer/sanitize"
)

// Answers are Markdown written by a model (or, extractive, cut from tenant documents) that a
// client may render: before they leave the worker, JSON or streamed, their images, links and raw
// HTML are neutralised unless they point to a host in the tenant's answer_link_hosts, so text
// injected into a document cannot make the client fetch an attacker's URL (issue 11, item 13).

// linkPolicy is the tenant's answer sanitising policy.
func linkPolicy(set ragplane.Settings) sanitize.Policy {
	return sanitize.Policy{AllowedHosts: sanitize.ParseHosts(set.AnswerLinkHosts)}
}

// sanitizeAnswer cleans a whole answer and returns it with what was removed, as the answer
// metadata's "sanitized" (nil when nothing was).
func (s *Server) sanitizeAnswer(sc *scope, text string) (string, map[string]int) {
	out, rep := linkPolicy(sc.cfg.Settings).Clean(text)
	return out, s.sanitized(sc, rep)
}

// sanitized turns a report into the answer metadata's counts and logs a removal, which is most
// likely a prompt injection in the tenant's documents.
func (s *Server) sanitized(sc *scope, rep sanitize.Report) map[string]int {
	if rep.Total() == 0 {
		return nil
	}
	s.log.Info("answer sanitised", "tenant_id", sc.tenant, "images", rep.Images, "links", rep.Links, "html", rep.HTML)
	counts := map[string]int{}
	for k, n := range map[string]int{"images": rep.Images, "links": rep.Links, "html": rep.HTML} {
		if n > 0 {
			counts[k] = n
		}
	}
	return counts
}
