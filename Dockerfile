# cachost on Debian 12 slim: `docker build -t cachost .` then
#   docker run -v cachost:/var/lib/cachost -p 127.0.0.1:8787:8787 cachost run --listen 0.0.0.0:8787
# The store and the vault's master key live in the volume (or pass CACHOST_MASTER_KEY).
FROM debian:12-slim AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential pkg-config liblua5.4-dev libyajl-dev libcurl4-openssl-dev libsqlite3-dev libevent-dev \
      libssl-dev libreadline-dev libzip-dev libpoppler-glib-dev libmaxminddb-dev libpcre2-dev libexpat1-dev \
      libzstd-dev zlib1g-dev libpq-dev lua5.4 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make BUILD=build build/cachost && make install PREFIX=/opt/cachost BUILD=build

FROM debian:12-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      liblua5.4-0 libyajl2 libcurl4 libsqlite3-0 libevent-2.1-7 libevent-openssl-2.1-7 libssl3 libreadline8 libzip4 \
      libpoppler-glib8 libmaxminddb0 libpcre2-8-0 libexpat1 libzstd1 zlib1g libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/cachost --create-home --shell /usr/sbin/nologin cachost \
    && chmod 700 /var/lib/cachost
COPY --from=build /opt/cachost /opt/cachost
USER cachost
ENV CACHOST_HOME=/var/lib/cachost PATH=/opt/cachost/bin:$PATH
VOLUME /var/lib/cachost
EXPOSE 8787
ENTRYPOINT ["cachost"]
CMD ["run", "--listen", "0.0.0.0:8787"]
