# live-gallery in a container: one image runs any role (ROLE=all|catalog|web).
#
# Build stage: the same toolchain the project pins (cargo-leptos 0.3.10, wasm-bindgen-cli equal
# to Cargo.lock's wasm-bindgen, binaryen's wasm-opt from npm), release build of the server and
# the size-optimised wasm bundle, with hashed names and brotli and gzip copies of the site's files.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add wasm32-unknown-unknown \
 && CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-leptos --locked --version 0.3.10
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN cargo install wasm-bindgen-cli --version \
    "$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
COPY end2end/package.json end2end/package-lock.json end2end/
RUN cd end2end && npm ci --no-audit --no-fund
COPY . .
RUN PATH="/src/end2end/node_modules/.bin:$PATH" cargo leptos build --release --precompress

# Runtime stage: the binary and the built site, nothing else, as an unprivileged user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home live-gallery
WORKDIR /app
COPY --from=build /src/target/release/server /app/server
# The hashes in the site's file names, read beside the binary.
COPY --from=build /src/target/release/hash.txt /app/hash.txt
COPY --from=build /src/target/site /app/site
ENV LEPTOS_SITE_ROOT=/app/site \
    LEPTOS_SITE_ADDR=0.0.0.0:3000 \
    RUST_LOG=info
USER live-gallery
EXPOSE 3000
CMD ["/app/server"]
