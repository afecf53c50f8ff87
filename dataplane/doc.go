// Package dataplane will be Ragplane's stateless workers: ingestion, chunking, embeddings,
// pgvector + full-text + graph retrieval and cited answers, against each tenant's own database
// (schema in catalog/tenantdb). It is not built yet (tracked as its own issue).
package dataplane
