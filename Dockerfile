# Ragplane in one small, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ragplane ./cmd/ragplane

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ragplane /usr/local/bin/ragplane
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/ragplane"]
