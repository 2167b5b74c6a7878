#!/usr/bin/env python3
"""Builds and checks OpenWrt .ipk packages of hotspot-edge without the OpenWrt SDK.

    scripts/ipk.py build BINARY ARCH OUTDIR    (prints the .ipk's path)
    scripts/ipk.py check PACKAGE.ipk

An .ipk as OpenWrt's scripts/ipkg-build makes it: a gzipped tar of ./debian-binary ("2.0"),
./control.tar.gz and ./data.tar.gz, every file owned by root, times from SOURCE_DATE_EPOCH.
The package files come from openwrt/hotspot-edge/ (the feed package), so both stay the same.
"""
import gzip, hashlib, io, os, re, sys, tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "openwrt", "hotspot-edge")
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)

# ELF e_machine and byte order per OpenWrt package architecture family.
ELF = {"x86_64": (62, "<"), "aarch64": (183, "<"), "arm": (40, "<"), "mipsel": (8, "<"), "mips": (8, ">")}

def makefile_field(name):
    text = open(os.path.join(PKG, "Makefile")).read()
    m = re.search(r"^\s*%s:=(.*)$" % re.escape(name), text, re.M)
    return m.group(1).strip() if m else None

def tar_gz(entries):
    """entries: (path, mode, bytes or None for a directory), in order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        for path, mode, data in entries:
            info = tarfile.TarInfo(path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=EPOCH) as g:
        g.write(raw.getvalue())
    return out.getvalue()

POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""

def build(binary, arch, outdir):
    version, release = makefile_field("PKG_VERSION"), makefile_field("PKG_RELEASE")
    out = os.path.join(outdir, "hotspot-edge_%s-r%s_%s.ipk" % (version, release, arch))
    read = lambda p: open(os.path.join(PKG, p), "rb").read()
    files = [
        ("./usr/bin/hotspot-edge", 0o755, open(binary, "rb").read()),
        ("./etc/init.d/hotspot-edge", 0o755, read("files/hotspot-edge.init")),
        ("./etc/hotspot-edge/config.toml", 0o640, read("files/config.toml")),
        ("./lib/upgrade/keep.d/hotspot-edge", 0o644, read("files/hotspot-edge.keep")),
    ]
    all_dirs = set()
    for p, _, _ in files:
        d = os.path.dirname(p)
        while d not in (".", ""):
            all_dirs.add(d)
            d = os.path.dirname(d)
    data = tar_gz([("./", 0o755, None)] + [(d + "/", 0o755, None) for d in sorted(all_dirs)] + files)
    size = sum(len(f[2]) for f in files)
    user = makefile_field("USERID")
    control = "\n".join([
        "Package: hotspot-edge",
        "Version: %s-r%s" % (version, release),
        "Depends: libc",
        "Source: feeds/hotspot/net/hotspot-edge",
        "SourceName: hotspot-edge",
        "License: %s" % makefile_field("PKG_LICENSE"),
        "LicenseFiles: LICENSE",
        "Section: net",
        "SourceDateEpoch: %d" % EPOCH,
        "URL: %s" % makefile_field("URL"),
        "Maintainer: %s" % makefile_field("PKG_MAINTAINER"),
        "Require-User: %s" % user,
        "Architecture: %s" % arch,
        "Installed-Size: %d" % size,
        "Description:  Local brain of a pay-per-use WiFi hotspot: payments, vouchers, users and",
        " sessions in SQLite; expiry and quotas enforced through RouterOS, RADIUS or openNDS;",
        " events synced to the cloud over MQTT.",
        "",
    ]).encode()
    ctl = tar_gz([
        ("./", 0o755, None),
        ("./control", 0o644, control),
        ("./conffiles", 0o644, b"/etc/hotspot-edge/config.toml\n"),
        ("./postinst", 0o755, POSTINST.encode()),
        ("./prerm", 0o755, PRERM.encode()),
    ])
    outer = tar_gz([("./debian-binary", 0o644, b"2.0\n"), ("./data.tar.gz", 0o644, data),
                    ("./control.tar.gz", 0o644, ctl)])
    with open(out, "wb") as f:
        f.write(outer)
    print(out)
    print("%s %d bytes, sha256 %s" % (out, len(outer), hashlib.sha256(outer).hexdigest()), file=sys.stderr)

def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)

def members(blob, what):
    try:
        t = tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz")
    except tarfile.TarError as e:
        fail("%s is not a gzipped tar: %s" % (what, e))
    return {m.name.lstrip("./") or ".": (m, t.extractfile(m).read() if m.isfile() else None)
            for m in t.getmembers()}

def check(path):
    outer = members(open(path, "rb").read(), path)
    if set(outer) != {"debian-binary", "data.tar.gz", "control.tar.gz"}:
        fail("%s holds %s, expected debian-binary, data.tar.gz, control.tar.gz" % (path, sorted(outer)))
    if outer["debian-binary"][1] != b"2.0\n":
        fail("debian-binary is %r, expected 2.0" % outer["debian-binary"][1])
    ctl = members(outer["control.tar.gz"][1], "control.tar.gz")
    data = members(outer["data.tar.gz"][1], "data.tar.gz")
    control = ctl.get("control", (None, None))[1]
    if control is None:
        fail("no control file")
    fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", control.decode(), re.M))
    for f in ["Package", "Version", "Architecture", "Maintainer", "License", "Section",
              "Description", "Installed-Size", "Require-User"]:
        if not fields.get(f, "").strip():
            fail("control field %s missing or empty" % f)
    if fields["Package"] != "hotspot-edge":
        fail("Package is %s" % fields["Package"])
    if not re.fullmatch(r"\d+\.\d+\.\d+-r\d+", fields["Version"]):
        fail("Version %r is not like 0.1.0-r1" % fields["Version"])
    if fields["License"] != "AGPL-3.0-only":
        fail("License is %s, expected AGPL-3.0-only" % fields["License"])
    if not fields["Require-User"].startswith("hotspot-edge="):
        fail("Require-User %r does not create the hotspot-edge user" % fields["Require-User"])
    for f, (m, _) in data.items():
        if m.uid != 0 or m.gid != 0:
            fail("%s is not owned by root" % f)
    conffiles = ctl.get("conffiles", (None, b""))[1].decode().split()
    if "/etc/hotspot-edge/config.toml" not in conffiles:
        fail("/etc/hotspot-edge/config.toml is not a conffile")
    for c in conffiles:
        if c.lstrip("/") not in data:
            fail("conffile %s is not in the package" % c)
    for script in ["postinst", "prerm"]:
        m, body = ctl.get(script, (None, None))
        if body is None or not body.startswith(b"#!/bin/sh") or not m.mode & 0o100:
            fail("%s missing or not an executable shell script" % script)
    for f in ["usr/bin/hotspot-edge", "etc/init.d/hotspot-edge"]:
        if f not in data:
            fail("%s missing" % f)
        if data[f][0].mode & 0o111 == 0:
            fail("%s is not executable" % f)
    init = data["etc/init.d/hotspot-edge"][1].decode()
    for needle in ["USE_PROCD=1", "procd_set_param respawn", "procd_set_param user", "reload_service", "check-config"]:
        if needle not in init:
            fail("the init script has no %s" % needle)
    cfg = data["etc/hotspot-edge/config.toml"][1].decode()
    db = re.search(r'^path = "(.*)"', cfg, re.M)
    if not db or db.group(1).startswith(("/tmp", "/var")):
        fail("the default database path %s is not on persistent storage" % (db and db.group(1)))
    binary = data["usr/bin/hotspot-edge"][1]
    if binary[:4] != b"\x7fELF":
        fail("usr/bin/hotspot-edge is not an ELF binary")
    order = "<" if binary[5] == 1 else ">"
    machine = int.from_bytes(binary[18:20], "little" if order == "<" else "big")
    family = next((k for k in ["x86_64", "aarch64", "mipsel", "mips", "arm"] if fields["Architecture"].startswith(k)), None)
    if family is None or ELF[family] != (machine, order):
        fail("the binary (machine %d, %s-endian) does not match Architecture %s"
             % (machine, "little" if order == "<" else "big", fields["Architecture"]))
    if int(fields["Installed-Size"]) < len(binary):
        fail("Installed-Size is smaller than the binary")
    print("%s: ok (%s %s, %d files, conffiles %s)" % (path, fields["Architecture"], fields["Version"],
          sum(1 for m, _ in data.values() if m.isfile()), " ".join(conffiles)))

if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["build"] and len(a) == 4:
        build(*a[1:])
    elif a[:1] == ["check"] and len(a) == 2:
        check(a[1])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
