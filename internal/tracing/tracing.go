// Package tracing sets up OpenTelemetry for a Ragplane process: W3C trace context and baggage are
// always propagated (so a trace crosses proxy -> worker even when this process exports nothing),
// and spans are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
package tracing

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/ragplane/ragplane"
)

// Setup installs the process's tracer provider and propagators; OpenTelemetry keeps them in its
// global registry by design. It returns a shutdown func that flushes pending spans.
func Setup(ctx context.Context, service string, getenv func(string) string) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return func(context.Context) error { return nil }, nil
	}
	// The exporter reads the standard OTEL_EXPORTER_OTLP_* variables itself.
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, errors.New("tracing: the OTLP exporter cannot be set up from OTEL_EXPORTER_OTLP_*")
	}
	res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("service.namespace", "ragplane"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// Exporting reports whether this process exports spans: whether Setup (or a test) installed an
// SDK tracer provider. Without one, spans are no-ops, and a hot path may skip making them.
func Exporting() bool {
	_, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	return ok
}

// WithTenant marks the request's span with the tenant and puts the tenant in the baggage, so the
// services downstream see it too.
func WithTenant(ctx context.Context, tenant ragplane.TenantID) context.Context {
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("ragplane.tenant_id", string(tenant)))
	if m, err := baggage.NewMember("ragplane.tenant_id", string(tenant)); err == nil {
		if b, err := baggage.FromContext(ctx).SetMember(m); err == nil {
			ctx = baggage.ContextWithBaggage(ctx, b)
		}
	}
	return ctx
}

// TraceID returns the trace id of ctx's span, for logs, or "".
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}
