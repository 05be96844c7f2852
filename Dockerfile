# spool in a container: a static binary on a distroless base, running as non-root, data in
# a volume. Untested by a build here (no Docker engine on the build machine): see
# docs/cluster.md.
#
#   docker build -t spool .
#   docker run -p 7420:7420 -v spool-data:/data spool
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/spool ./cmd/spool

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/spool /usr/local/bin/spool
# HTTP API, beanstalkd protocol, cluster routes.
EXPOSE 7420 11300 6222
VOLUME ["/data"]
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/spool", "serve", "--data", "/data", "--http", "0.0.0.0:7420"]
