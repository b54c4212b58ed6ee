# pipehost image: Debian 12 build stage, slim runtime stage with the shared libraries
# pipehost and its plugins link against, installed under /opt/pipehost.
#
#   docker build -t pipehost .
#   docker run --rm pipehost plugins
#   docker run --rm -v "$PWD/configs:/etc/pipehost:ro" pipehost run /etc/pipehost/transactions.toml
#
# The compose files in compose/ build this image (build: context: ..).

FROM debian:bookworm-slim AS build
# The build part of scripts/install-deps' list (no services, Java, Maven, ccache, kcat):
# tests/e2e/test_compose_files.py checks that every package here is in that list.
# python3: the tests/ folder's CMakeLists needs an interpreter to register the e2e tests.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake ninja-build pkg-config python3 \
      librdkafka-dev libprotobuf-dev libprotoc-dev protobuf-compiler libboost-dev \
      libtomlplusplus-dev libhiredis-dev libpqxx-dev libsqlite3-dev doctest-dev \
      libcurl4-openssl-dev nlohmann-json3-dev libcpp-httplib-dev libsimdjson-dev libavro-dev \
      libmimalloc-dev prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY sdk sdk
COPY proto proto
COPY host host
COPY plugins plugins
COPY tests tests
COPY configs configs
# bench/ is configured (the top-level CMakeLists names it) but not built into the image.
COPY bench bench
# PIPEHOST_WERROR=OFF: development builds treat warnings as errors; an image build should
# not fail because a compiler at -O3 finds a new warning.
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPIPEHOST_WERROR=OFF -DPIPEHOST_BUILD_BENCH=OFF \
 && cmake --build build \
 && cmake --install build --prefix /opt/pipehost

FROM debian:bookworm-slim
# What `readelf -d` lists as NEEDED by bin/pipehost and lib/pipehost/plugins/*.so, besides
# libc/libstdc++/libgcc: librdkafka.so.1, libprotobuf.so.32, libprotoc.so.32,
# libhiredis.so.0.14, libtomlplusplus.so.3, libcurl.so.4, libsimdjson.so.14,
# libpqxx-6.4.so (and libpq.so.5), libsqlite3.so.0, libavro.so.23, libmimalloc.so.2, libprometheus-cpp-core.so.1.0. ca-certificates for https registry URLs.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      librdkafka1 libprotobuf32 libprotoc32 libhiredis0.14 libtomlplusplus3 libcurl4 \
      libsimdjson14 libpqxx-6.4 libpq5 libsqlite3-0 libavro23 libmimalloc2.0 libprometheus-cpp-core1.0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/pipehost --shell /usr/sbin/nologin pipehost
COPY --from=build /opt/pipehost /opt/pipehost
# Fails the image build if a library is missing: loads every plugin (`plugins` exits 0
# even when it refuses one, so look for "refused" and for each plugin by name).
RUN /opt/pipehost/bin/pipehost plugins > /tmp/plugins.txt 2>&1 \
 && ! grep refused /tmp/plugins.txt \
 && for p in aggregate avro datagen file json kafka log postgres protobuf redis router rules sqlite; do \
      grep -q "^$p " /tmp/plugins.txt || { echo "plugin $p missing"; exit 1; }; done \
 && rm /tmp/plugins.txt
USER pipehost
WORKDIR /var/lib/pipehost
ENTRYPOINT ["/opt/pipehost/bin/pipehost"]
CMD ["--help"]
