// Package dataplane is Ragplane's data-plane worker: ingestion, chunking, embedding, retrieval
// (vector, keyword, hybrid, graph, agentic) and cited answers over each tenant's own database.
// Workers are stateless and run side by side; they serve only requests whose tenant context the
// proxy signed, and hold only caches: tenants' catalog entries, a bounded set of database pools,
// and embedders.
package dataplane
