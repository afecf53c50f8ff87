// Package ragplane is the shared domain of the Ragplane multi-tenant RAG platform: tenants, plans,
// limits and settings with the cascade that resolves them, API keys, audit entries, usage events,
// error codes, and tenant identity carried in a context.
//
// It depends on the standard library only. The services (controlplane, proxy, dataplane) and the
// catalog exchange these types; adapters for outside systems live in subpackages.
package ragplane
