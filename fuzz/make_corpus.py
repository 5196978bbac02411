#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ in each target's input layout.

The seeds are real-looking registry input: repository names and tags of public images, OCI and
Docker manifests and indexes, Range headers that clients send, and a Distribution config.yml.
Each file is named after the SHA-1 of its bytes, as libFuzzer names the inputs it adds, so
running this again rewrites the same files.

Usage: python3 fuzz/make_corpus.py
"""

import hashlib
import json
import struct
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def sha256(seed):
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def sha512(seed):
    return "sha512:" + hashlib.sha512(seed.encode()).hexdigest()


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def encode_arbitrary(strings, rest):
    """Encodes the fields of a struct derived with `arbitrary` 1.x: each string but the last
    takes its bytes from the front and its length from the back of the input, and the last
    field takes what remains."""
    widths = [1] * len(strings)
    while True:
        remaining = sum(map(len, strings)) + len(rest) + sum(widths)
        new_widths = []
        for string in strings:
            width = 1 if remaining <= 0x100 else 2
            assert remaining <= 0x10001, "seed too large for two-byte lengths"
            new_widths.append(width)
            remaining -= width + len(string)
        if new_widths == widths:
            break
        widths = new_widths

    # A length is read from as many bytes as the largest possible length needs, high byte first.
    lengths = b""
    remaining = sum(map(len, strings)) + len(rest) + sum(widths)
    for string, width in zip(strings, widths):
        largest = remaining - width
        encoded = len(string).to_bytes(width, "big") if largest > 0xFF else bytes([len(string)]).ljust(width, b"\0")
        lengths = encoded + lengths
        remaining -= width + len(string)
    return b"".join(strings) + rest + lengths


def mapping_seeds():
    upload_a = "6f1c2a9e0b3d4c5e8f7a6b5c4d3e2f10"
    upload_b = "0123456789abcdef0123456789abcdef"
    content_dir = "/var/lib/containerd/io.containerd.content.v1.content"
    pairs = [
        (("/registry", "library/ubuntu", "22.04", upload_a, sha256("layer")),
         ("/registry", "library/ubuntu", "latest", upload_b, sha256("config"))),
        (("/", "nginx", "latest", upload_a, sha256("nginx")),
         ("/registry", "nginx", "latest", upload_a, sha512("nginx"))),
        (("/a/b", "c", "v1", upload_a, sha256("c")),
         ("/a", "b/c", "v1", upload_a, sha256("b/c"))),
        (("/r1/", "myorg/team/app-server", "v1.2.3-rc.1", upload_b, sha512("app")),
         ("/r1", "myorg/team/app-server", "v1.2.3-rc.1", upload_b, sha256("app"))),
        (("/x", "a" * 60 + "/" + "b" * 60, "_" + "t" * 40, upload_a, sha256("long")),
         ("/x", "foo__bar/baz---qux.quux_1", "A-b_c.d", upload_b, sha256("odd"))),
        (("registry", "Library/Ubuntu", ".bad", "ZZZ", "sha256:../../etc/passwd"),
         ("/a//b", "a//b", "a:b", upload_a.upper(), "md5:00")),
    ]
    for first, second in pairs:
        strings = [part.encode() for part in first + second]
        write("mapping", encode_arbitrary(strings, content_dir.encode()))


def reference_seeds():
    values = [
        "library/ubuntu", "nginx", "ghcr-mirror/org/app", "foo__bar", "a---b", "a.b_c",
        "myorg/team/app-server", "a" * 255, "a" * 256, "Library/Ubuntu", "a//b", "a/", "..",
        "latest", "v1.2.3", "1.0_rc-2", "_private", "t" * 128, "t" * 129, ".hidden", "-dash",
        sha256("x"), sha512("x"), sha256("x").upper(), "sha256:abc", "md5:00", "sha256+b64u:AbC-_=",
        "sha256:" + "0" * 65, ":", "sha256:", "a:b",
    ]
    for value in values:
        write("reference", value)


def descriptor(media_type, seed, size, **extra):
    return dict(mediaType=media_type, digest=sha256(seed), size=size, **extra)


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONTENT_TYPE_SELECTORS = {None: 0, OCI_MANIFEST: 1, OCI_INDEX: 2, DOCKER_MANIFEST: 3, DOCKER_LIST: 4}


def manifest_seeds():
    image = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", "config", 1469),
        "layers": [
            descriptor("application/vnd.oci.image.layer.v1.tar+gzip", "layer0", 29534055),
            descriptor("application/vnd.oci.image.layer.v1.tar+gzip", "layer1", 851),
        ],
        "annotations": {"org.opencontainers.image.created": "2024-05-01T00:00:00Z"},
    }
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(OCI_MANIFEST, "amd64", 1022, platform={"architecture": "amd64", "os": "linux"}),
            descriptor(OCI_MANIFEST, "arm64", 1022,
                       platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ],
    }
    docker = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", "dconfig", 7023),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", "dlayer", 32654)],
    }
    docker_list = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [descriptor(DOCKER_MANIFEST, "d-amd64", 528,
                                 platform={"architecture": "amd64", "os": "linux"})],
    }
    artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": descriptor("application/vnd.oci.empty.v1+json", "{}", 2, data="e30="),
        "layers": [descriptor("application/spdx+json", "sbom", 4096)],
        "subject": descriptor(OCI_MANIFEST, "amd64", 1022),
    }
    foreign = dict(docker, layers=[descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                                              "windows", 1000, urls=["https://example.com/layer"])])
    untyped = {key: value for key, value in image.items() if key != "mediaType"}

    seeds = [
        (OCI_MANIFEST, image), (OCI_INDEX, index), (DOCKER_MANIFEST, docker), (DOCKER_LIST, docker_list),
        (None, artifact), (None, foreign), (None, untyped), (OCI_INDEX, untyped),
        (None, dict(image, schemaVersion=1)), (OCI_INDEX, image),
    ]
    for content_type, body in seeds:
        write("manifest", bytes([CONTENT_TYPE_SELECTORS[content_type]]) + json.dumps(body, indent=3).encode())
    write("manifest", b"\x05" + json.dumps(image).encode())
    write("manifest", b"\xff" + b"application/vnd.oci.image.manifest.v1+json ; charset=utf-8\n" +
          json.dumps(image).encode())


def range_seeds():
    headers = [
        (4096, "bytes=0-1023"), (1000, "bytes=-500"), (1000, "bytes=100-"), (100, "bytes=0-0,-1"),
        (100, "items=0-1"), (0, "bytes=0-"), (2**64 - 1, "bytes=18446744073709551614-"),
        (29534055, "bytes=0-99999999999999999999"), (100, "BYTES = 5-9 "),
        (0, "0-1048575"), (0, "bytes 0-1048575/*"), (0, "bytes=1048576-2097151"), (0, "bytes 0-9/10"),
        (0, "bytes 0-18446744073709551614/18446744073709551615"),
    ]
    for size, header in headers:
        write("range", struct.pack("<Q", size) + header.encode())


def pagination_seeds():
    seeds = [
        "100\n\nlatest\nv1\nv2",
        "2\nv1\n1.0\n1.1\nlatest\nv1\nv2",
        "\n",
        "0\n\na\nb",
        "99999999999999999999\n\na",
        "-1",
        "3\nlibrary/alpine\nlibrary/alpine\nlibrary/nginx\nlibrary/ubuntu\nmyorg/app",
        "10000\nz\na\nb",
    ]
    for seed in seeds:
        write("pagination", seed)


def config_seeds():
    distribution = """version: 0.1
log:
  level: debug
  formatter: json
  fields:
    service: registry
http:
  addr: 127.0.0.1:5000
  secret: asecretforlocaldevelopment
  headers:
    X-Content-Type-Options: [nosniff]
  http2:
    disabled: false
storage:
  containerd:
    address: unix:///run/containerd/containerd.sock
    namespace: registry
    root: /registry/main
    contentdir: /var/lib/containerd/io.containerd.content.v1.content
    fastpath: mmap
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: false
health:
  storagedriver:
    enabled: true
"""
    filesystem = """version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
auth:
  htpasswd:
    realm: basic-realm
    path: /etc/registry
"""
    seeds = [
        distribution,
        filesystem,
        "version: 0.1\nlog:\n  level: info\nhttp:\n  addr: 127.0.0.1:5000\nstorage:\n  driver: containerd\n",
        "\0STORAGE_DELETE_ENABLED=true\0HTTP_ADDR=:5001\0STORAGE_CONTAINERD_ROOT=/r2",
        "storage:\n  containerd:\n    namespace: a\n\0STORAGE_CONTAINERD=x",
        "log: &a\n  level: warn\nhttp: *a\n",
        "e\n",
    ]
    for seed in seeds:
        write("config", seed)


if __name__ == "__main__":
    mapping_seeds()
    reference_seeds()
    manifest_seeds()
    range_seeds()
    pagination_seeds()
    config_seeds()
