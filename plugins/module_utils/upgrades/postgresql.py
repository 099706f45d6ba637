# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_upgrade of a stopped snapshot, with the old major's binaries taken from the template's own image.

pg_upgrade needs both majors' binaries side by side; no image ships both, and
nothing may be downloaded. So the old image is asked once for its server
(``/usr/lib/postgresql/N``, ``/usr/share/postgresql/N``) and for the shared
libraries those link to, apart from the C library; that bundle is kept on the
pool by image id. In the new image the old tree is mounted where pg_upgrade
looks for it, and only the libraries whose names the new image lacks (an older
ICU, say) go on the loader's path, so the new binaries never load an old copy.

The old datadir is moved into a folder of the snapshot and the new one made
beside it, so that ``--link`` hard-links every relation file: same subvolume,
no byte copied, and the template is untouched because the snapshot is a copy.
"""

from __future__ import annotations

import os
import re
import shutil

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

# Where the bundle is mounted in the upgrade container.
BUNDLE_MOUNT = "/myaas/old"

# Run as root in the OLD image; $1 is the bundle folder to fill.
BUNDLE_SCRIPT = r"""set -eu
out=$1
postgres=$(ls /usr/lib/postgresql/*/bin/postgres | tail -n 1)
home=$(dirname "$(dirname "$postgres")")
major=$(basename "$home")
mkdir -p "$out/home" "$out/libs"
cp -a "$home/." "$out/home/"
# JIT is off in an upgrade; its LLVM is most of the size.
rm -rf "$out/home/lib/llvmjit"* "$out/home/lib/bitcode"
cp -a "/usr/share/postgresql/$major" "$out/share"
"$postgres" --version > "$out/version"
for file in "$out"/home/bin/* "$out"/home/lib/*.so; do ldd "$file" 2>/dev/null || true; done |
    awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u | while read -r lib; do
    case $(basename "$lib") in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libresolv.so.*|ld-linux*) ;;
        *) cp -L "$lib" "$out/libs/" ;;
    esac
done
echo "$major" > "$out/major"
"""

# Run as root in the NEW image with the bundle mounted; $1 is the datadir,
# $2 the old major. Ends with the upgraded cluster at $1, or fails with
# pg_upgrade's own reports on stderr.
UPGRADE_SCRIPT = r"""set -eu
data=$1; old=$2
new_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_upgrade | tail -n 1)")
old_bin=/usr/lib/postgresql/$old/bin
mkdir -p /tmp/myaas-old-libs
for lib in "$BUNDLE"/libs/*; do
    [ -e "$lib" ] || continue
    name=$(basename "$lib")
    ldconfig -p | grep -q "^[[:space:]]$name " || ln -s "$lib" /tmp/myaas-old-libs/
done
export LD_LIBRARY_PATH=/tmp/myaas-old-libs
cd "$data"
mkdir -m 700 .myaas-old
find . -mindepth 1 -maxdepth 1 ! -name .myaas-old -exec mv -t .myaas-old {} +
chown -R postgres:postgres "$data"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
checksums=
"$old_bin/pg_controldata" .myaas-old | grep -q '^Data page checksum version: *0$' || checksums=--data-checksums
# As MyAAS's launcher made the old cluster: pg_upgrade wants the same
# encoding, locale and checksums on both sides.
as_postgres "$new_bin/initdb" --pgdata="$data/.myaas-new" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 $checksums >/dev/null
echo "host all all all scram-sha-256" >> "$data/.myaas-new/pg_hba.conf"
cd /tmp
if ! as_postgres "$new_bin/pg_upgrade" --old-bindir="$old_bin" --new-bindir="$new_bin" \
        --old-datadir="$data/.myaas-old" --new-datadir="$data/.myaas-new" --link --socketdir=/tmp \
        --username=postgres >/tmp/pg_upgrade.out 2>&1; then
    cat /tmp/pg_upgrade.out >&2
    for report in "$data"/.myaas-new/pg_upgrade_output.d/*/*.txt; do
        [ -f "$report" ] && { echo "== $(basename "$report")"; cat "$report"; } >&2
    done
    for log in "$data"/.myaas-new/pg_upgrade_output.d/*/log/*.log; do
        [ -f "$log" ] && grep -h -E '(ERROR|FATAL|error):' "$log" >&2
    done
    exit 1
fi
grep -i -E 'warning|notice' /tmp/pg_upgrade.out || true
rm -rf "$data/.myaas-old"
find "$data/.myaas-new" -mindepth 1 -maxdepth 1 -name 'delete_old_cluster.sh' -delete
find "$data/.myaas-new" -mindepth 1 -maxdepth 1 -exec mv -t "$data" {} +
rmdir "$data/.myaas-new"
"""

_LIBRARY_RE = re.compile(r'could not load library "\$libdir/([^"]+)":[^\n]*(?:\n\s*In database: (\S+))?')


def bundle_path(pool, image_id):
    return os.path.join(pool.path, "cache", "postgresql-bundles", image_id.split(":")[-1][:16])


def ensure_bundle(docker, pool, image, image_id):
    """The old major's binaries from ``image``, as a folder on the pool (made once per image id)."""
    path = bundle_path(pool, image_id)
    if os.path.isfile(os.path.join(path, "major")):
        return path
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial, mode=0o755)
    spec = {"name": None, "image": image, "user": "0", "network": "none", "entrypoint": "/bin/sh",
            "args": ["-c", BUNDLE_SCRIPT, "myaas-bundle", BUNDLE_MOUNT],
            "mounts": [{"type": "bind", "source": partial, "target": BUNDLE_MOUNT}]}
    code, log = docker.run_once(spec, 300)
    if code != 0 or not os.path.isfile(os.path.join(partial, "major")):
        shutil.rmtree(partial, ignore_errors=True)
        raise MyaasError("The PostgreSQL server binaries could not be taken from the template's image %s (exit "
                         "code %s): %s" % (image, code, log.strip()[-1000:]))
    os.rename(partial, path)
    return path


def bundle_major(path):
    with open(os.path.join(path, "major"), encoding="utf-8") as handle:
        return handle.read().strip()


def upgrade_spec(image, datadir, snapshot, bundle, major):
    """The throw-away container that runs pg_upgrade on ``snapshot`` in the new ``image``."""
    return {
        "name": None, "image": image, "user": "0", "network": "none", "entrypoint": "/bin/sh",
        "args": ["-c", "BUNDLE=%s; export BUNDLE\n%s" % (BUNDLE_MOUNT, UPGRADE_SCRIPT), "myaas-pg-upgrade",
                 datadir, major],
        "mounts": [
            {"type": "bind", "source": snapshot, "target": datadir},
            {"type": "bind", "source": bundle, "target": BUNDLE_MOUNT, "readonly": True},
            {"type": "bind", "source": os.path.join(bundle, "home"), "target": "/usr/lib/postgresql/" + major,
             "readonly": True},
            {"type": "bind", "source": os.path.join(bundle, "share"), "target": "/usr/share/postgresql/" + major,
             "readonly": True},
        ],
    }


def failure_problems(output, image):
    """[{kind, name, problem}] that pg_upgrade's failure output names: libraries (extensions) the new
    server lacks; the rest of the output goes into the error as it is."""
    problems = []
    for library, database in _LIBRARY_RE.findall(output):
        problems.append({
            "kind": "extension", "name": library,
            "problem": "the template uses library %s (extension %s%s), which the server of %s does not have: the "
                       "extension was removed from this version or is not installed in the image. Drop it from the "
                       "template (post_import_sql: DROP EXTENSION %s;) or use an image that ships it."
                       % (library, library, " in database %s" % database if database else "", image, library)})
    return problems
