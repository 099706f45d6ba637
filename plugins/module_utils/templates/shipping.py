# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shipping a template's current generation from one pool to another with btrfs send and receive.

A side is a pool and the way to run commands where it is: on this host, or
through an ssh command line (the SSH that Ansible already uses to reach that
host). The stream goes from ``btrfs send`` through zstd, through this
process (which counts it), to ``btrfs receive``. It is never staged whole on
disk.

The receiver gets the generation in the template's folder, where btrfs
receive makes it read-only and sets its Received UUID once the whole stream
is in. Only then, if that UUID is the sender's, does template.json name it,
replaced atomically as a local import does. (A received subvolume cannot be
moved to another folder: it is read-only, and a move rewrites its "..".) A
transfer killed halfway leaves a generation that template.json does not
name; the current one keeps serving, and the next ship removes the leftover
first. A generation that is a snapshot of one the
receiver already holds (an incremental refresh) is sent with that one as its
parent (``btrfs send -p``), so only what changed crosses.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.templates.generations import RECORD_KEYS

METADATA = "template.json"
# What a ship with swap=false leaves beside the generation it delivered, for
# myaas_receive to check and swap in on the receiving host.
STAGED = ".ship-gen-%d.json"
CHUNK = 1024 * 1024
# Both scripts below act only if the receiver's template.json is still what
# this run planned from (its sha256, or "none"): another ship or an import
# since then may have made a "leftover" the current generation.
UNCHANGED = """now=none
if [ -e "$folder/template.json" ]; then now=$(sha256sum < "$folder/template.json" | cut -d' ' -f1); fi
if [ "$now" != "$expected" ]; then
    echo "the receiver's template.json changed since this run read it (another ship or an import): run again" >&2
    exit 4
fi"""
# Run on the receiver, under the template's lock: remove what a killed
# transfer left, then receive the stream (zstd-compressed) into the folder.
RECEIVE_SCRIPT = """set -eu -o pipefail
folder=$1 lock=$2 wait=$3 expected=$4
shift 4
exec 9>>"$lock"
flock -w "$wait" 9 || { echo "another import or ship held the template's lock $lock for $wait s" >&2; exit 5; }
""" + UNCHANGED + """
for left in "$@"; do
    [ -e "$folder/$left" ] || continue
    btrfs property set -f -ts "$folder/$left" ro false >/dev/null 2>&1 || true
    btrfs subvolume delete "$folder/$left" >/dev/null
done
rm -f "$folder"/.ship-gen-*.json
zstd --decompress --quiet | btrfs receive --quiet "$folder"
"""
# Run on the receiver, under the template's lock: check what arrived, then
# make it current with template.json (read from stdin), then prune.
SWAP_SCRIPT = """set -eu
folder=$1 lock=$2 wait=$3 expected=$4 generation=$5 uuid=$6
shift 6
exec 9>>"$lock"
flock -w "$wait" 9 || { echo "another import or ship held the template's lock $lock for $wait s" >&2; exit 5; }
""" + UNCHANGED + """
got=$(btrfs subvolume show "$folder/gen-$generation" | sed -n 's/^[[:space:]]*Received UUID:[[:space:]]*//p')
if [ "$got" != "$uuid" ]; then
    echo "the received subvolume's Received UUID is '$got', not the sender's $uuid" >&2
    exit 3
fi
cat > "$folder/.template.json.new"
sync "$folder/.template.json.new"
mv "$folder/.template.json.new" "$folder/template.json"
sync "$folder"
for gone in "$@"; do
    [ -e "$folder/$gone" ] || continue
    btrfs property set -f -ts "$folder/$gone" ro false >/dev/null
    btrfs subvolume delete "$folder/$gone" >/dev/null
done
"""


class Side:
    """A pool, and the command line prefix that runs commands where it is ([] for this host)."""

    def __init__(self, pool_path, via, runner):
        self.pool = pool_path.rstrip("/")
        # The pool's layout (folders, generations, locks) as Pool defines it; its commands are not used.
        self.layout = Pool(self.pool, runner)
        self.via = list(via or [])
        self._run = runner.run

    def argv(self, argv):
        # ssh hands its command to the remote shell as one string.
        return self.via + [shlex.join(argv)] if self.via else list(argv)

    def run(self, argv, check=True, data=None):
        return self._run(self.argv(argv), check=check, data=data)

    def folder(self, name):
        return self.layout.template_dir(name)

    def generation(self, name, number):
        return self.layout.generation_path(name, number)

    def lock(self, name):
        # The lock a local import of the template takes too.
        return self.layout.lock_path("template", name)

    def template(self, name):
        """The template's metadata on this side, or None."""
        # Only a missing file means "no template": an ssh or permission failure must not read as one.
        out = self.run(["sh", "-c", 'if [ -e "$1" ]; then cat "$1"; fi', "myaas-read",
                        os.path.join(self.folder(name), METADATA)])[1]
        return json.loads(out) if out.strip() else None

    def digest(self, name):
        """sha256 of the template's metadata file on this side, or "none"."""
        out = self.run(["sh", "-c", 'if [ -e "$1" ]; then sha256sum < "$1" | cut -d" " -f1; else echo none; fi',
                        "myaas-digest", os.path.join(self.folder(name), METADATA)])[1]
        return out.strip()

    def generations_present(self, name):
        """Numbers of the gen-N folders in the template's folder (complete or not)."""
        out = self.run(["sh", "-c", 'if [ -d "$1" ]; then ls "$1"; fi', "myaas-list", self.folder(name)])[1]
        return sorted(int(entry[4:]) for entry in out.split() if re.match(r"^gen-\d+$", entry))

    def subvolume(self, path):
        """{"uuid", "parent_uuid", "received_uuid"} of a subvolume (None for "-"), or None if it is not there."""
        rc, out, _err = self.run(["btrfs", "subvolume", "show", path], check=False)
        if rc != 0:
            return None
        return parse_show(out)

    def where(self):
        return "%s on %s" % (self.pool, self.via[-1] if self.via else "this host")


def parse_show(output):
    fields = {}
    for line in output.splitlines():
        key, _sep, value = line.strip().partition(":")
        fields[key.strip()] = value.strip()
    return dict((name, None if fields.get(key, "-") in ("-", "") else fields[key])
                for name, key in (("uuid", "UUID"), ("parent_uuid", "Parent UUID"), ("received_uuid", "Received UUID")))


def identity(sub):
    """The UUID a subvolume's copies are known by: btrfs send carries a received subvolume's Received UUID."""
    return sub.get("received_uuid") or sub["uuid"]


def parse_list(output):
    """{uuid: {"parent_uuid", "received_uuid", "path"}} from ``btrfs subvolume list -u -q -R`` (paths from the top)."""
    found = {}
    for line in output.splitlines():
        fields = re.search(r"parent_uuid (\S+)\s+received_uuid (\S+)\s+uuid (\S+) path (.+)$", line)
        if fields:
            parent, received, uuid, path = fields.groups()
            found[uuid] = {"parent_uuid": None if parent == "-" else parent,
                           "received_uuid": None if received == "-" else received, "path": path.strip()}
    return found


def shared_parent(sent, source_all, source_read_only, target_known):
    """The nearest read-only subvolume above ``sent`` (by snapshots) that the target holds a copy of, or None.

    ``source_all``: parse_list() of the source's filesystem; ``source_read_only``:
    the UUIDs of its read-only subvolumes (btrfs send -p needs one);
    ``target_known``: the UUIDs and Received UUIDs on the target's. A branch
    is a snapshot of an instance, itself a snapshot of a generation the
    other servers received too: sent against it, only what the instance
    changed crosses. Returns the parent's entry of ``source_all``.
    """
    ancestor, seen = sent.get("parent_uuid"), set()
    while ancestor and ancestor in source_all and ancestor not in seen:
        seen.add(ancestor)
        entry = source_all[ancestor]
        if ancestor in source_read_only and (entry["received_uuid"] or ancestor) in target_known:
            return dict(entry, uuid=ancestor)
        ancestor = entry["parent_uuid"]
    return None


def plan(name, source, source_subvolumes, target, target_subvolumes, lineage=None):
    """What shipping the source's current generation needs: None when the target has it, else a dict.

    ``*_subvolumes``: {generation number: parse_show() of gen-N} on each side;
    ``lineage``: {uuid: parent uuid} of the source's other subvolumes (the
    bases of physical backups). The parent is the nearest generation the new
    one descends from by snapshots (an incremental refresh is a snapshot of
    the previous generation's base, itself a snapshot of that generation),
    if the target received it from this source; for a physical backup, else
    the newest older generation the target received (its files may share
    blocks by reflinks); otherwise the stream is full.
    """
    generation = source["generation"]
    sent = source_subvolumes.get(generation)
    if not sent:
        raise MyaasError("Template %s's current generation %d is missing on its pool; import it again there."
                         % (name, generation))
    listed = [record["generation"] for record in (target or {}).get("generations") or ([target] if target else [])]
    # A generation the receiver's template.json names but that btrfs receive did not make was imported there.
    foreign = [number for number in listed if number in target_subvolumes
               and not (target_subvolumes[number] or {}).get("received_uuid")]
    if foreign:
        raise MyaasError("Generation %s of template %s on the receiving pool was not received (it was imported "
                         "there). A host either imports a "
                         "template or receives it; remove the template there (myaas_template state=absent) to "
                         "receive it." % (", ".join(str(number) for number in foreign), name))
    # Only generations the receiver's template.json names can be parents: a leftover is removed first.
    received = dict((sub["received_uuid"], number) for number, sub in target_subvolumes.items()
                    if sub and sub.get("received_uuid") and number in listed)
    if target and target.get("generation") == generation and received.get(identity(sent)) == generation:
        return None
    parent = None
    numbers = dict((sub["uuid"], number) for number, sub in source_subvolumes.items() if sub)
    copies = dict((identity(sub), number) for number, sub in source_subvolumes.items() if sub)
    ancestors = dict(lineage or {}, **dict((sub["uuid"], sub.get("parent_uuid")) for sub in source_subvolumes.values()
                                           if sub))
    ancestor, seen = sent.get("parent_uuid"), set()
    while ancestor and ancestor not in seen:
        seen.add(ancestor)
        if ancestor in numbers and identity(source_subvolumes[numbers[ancestor]]) in received:
            parent = numbers[ancestor]
            break
        ancestor = ancestors.get(ancestor)
    if parent is None and source.get("base"):
        # A physical refresh whose files were reflinked from the previous base (pg_combinebackup
        # --copy-file-range) shares blocks with the previous generation without being its snapshot:
        # sent against it, those blocks cross as clones.
        older = [copies[uuid] for uuid in received if uuid in copies and copies[uuid] < generation]
        parent = max(older) if older else None
    kept = [record["generation"] for record in source.get("generations") or [source]]
    return {"generation": generation, "uuid": identity(sent), "parent": parent, "parent_path": None,
            # What a killed or failed ship left: not named by the receiver's template.json.
            "leftovers": sorted(number for number in target_subvolumes if number not in listed),
            "prune": sorted(number for number in target_subvolumes
                            if number not in kept and number != generation and number in listed)}


def metadata_for(source, target_folder, target_generations):
    """The source's template.json as the target holds it: paths in its folder, the generations it has."""
    def path(number):
        return os.path.join(target_folder, "gen-%d" % number)

    document = json.loads(json.dumps(source))
    document["path"] = path(document["generation"])
    if document.get("base"):
        document["base"] = None          # bases stay with the importer: the next incremental backup runs there
    records = [dict(record, path=path(record["generation"])) for record in source.get("generations") or []
               if record["generation"] in target_generations]
    document["generations"] = records or [dict((key, document.get(key)) for key in RECORD_KEYS)]
    return document


class Shipper:
    """Ships template ``name`` from ``source`` to ``target`` (two Sides)."""

    def __init__(self, name, source, target, runner, lock_timeout, transfer_timeout):
        self.name, self.source, self.target = name, source, target
        self.runner, self.lock_timeout, self.transfer_timeout = runner, lock_timeout, transfer_timeout
        self.expected = "none"

    def subvolumes(self, side, numbers):
        return dict((number, side.subvolume(side.generation(self.name, number)))
                    for number in numbers)

    def plan(self):
        source = self.source.template(self.name)
        if not source:
            raise MyaasError("Template %s is not on %s; import it there first." % (self.name, self.source.where()))
        self.expected = self.target.digest(self.name)
        target = self.target.template(self.name)
        numbers = [record["generation"] for record in source.get("generations") or [source]]
        theirs = set(numbers) | set(self.target.generations_present(self.name))
        theirs |= set([record["generation"] for record in (target or {}).get("generations") or []])
        if target:
            theirs.add(target["generation"])
        source_subs = self.subvolumes(self.source, numbers)
        target_subs = dict((number, sub) for number, sub in self.subvolumes(self.target, sorted(theirs)).items() if sub)
        steps = plan(self.name, source, source_subs, target, target_subs, self.lineage())
        if steps and steps["parent"] is None:
            self.find_shared_parent(steps, source_subs[source["generation"]])
        return source, target, steps, target_subs

    def find_shared_parent(self, steps, sent):
        """Another template's generation to send against (a branch's origin), set in ``steps`` if there is one."""
        def listing(side, *flags):
            return parse_list(side.run(["btrfs", "subvolume", "list"] + list(flags) + ["-u", "-q", "-R", side.pool])[1])

        # Not this template's own subvolumes: the receiver removes its leftovers before receiving (and its
        # listed generations were already tried as parents).
        own = "templates/%s/" % self.name
        theirs = dict((uuid, entry) for uuid, entry in listing(self.target).items()
                      if ("/" + own) not in ("/" + entry["path"]))
        known = set(theirs) | set(entry["received_uuid"] for entry in theirs.values() if entry["received_uuid"])
        found = shared_parent(sent, listing(self.source), set(listing(self.source, "-r")), known)
        # Listed paths start at the filesystem's top: the parent must be a generation of this pool.
        match = re.search(r"(?:^|/)templates/([^/]+)/gen-(\d+)$", (found or {}).get("path", ""))
        if not match:
            return
        path = self.source.generation(match.group(1), int(match.group(2)))
        if (self.source.subvolume(path) or {}).get("uuid") == found["uuid"]:
            steps.update(parent=int(match.group(2)), parent_template=match.group(1), parent_path=path)

    def lineage(self):
        """{uuid: parent uuid} of the source's bases (base-N, kept for incremental backups)."""
        folder = self.source.folder(self.name)
        names = self.source.run(["ls", folder])[1].split()
        found = {}
        for base in (entry for entry in names if re.match(r"^base-\d+$", entry)):
            sub = self.source.subvolume(os.path.join(folder, base))
            if sub:
                found[sub["uuid"]] = sub.get("parent_uuid")
        return found

    def ship(self, source, steps, target_subs, swap=True):
        """Send, receive, check and swap (or stage, without ``swap``); returns (bytes sent, seconds)."""
        send = ["btrfs", "send", "--quiet"]
        if steps["parent"] is not None:
            send += ["-p", steps.get("parent_path") or self.source.generation(self.name, steps["parent"])]
        send += [self.source.generation(self.name, steps["generation"])]
        sender_argv = self.source.argv(["bash", "-c", 'set -o pipefail; "$@" | zstd -1 --quiet', "myaas-send"] + send)
        receiver_argv = self.target.argv(["bash", "-c", RECEIVE_SCRIPT, "myaas-receive", self.target.folder(self.name),
                                          self.target.lock(self.name), str(self.lock_timeout), self.expected]
                                         + ["gen-%d" % number for number in steps["leftovers"]])
        self.target.run(["mkdir", "-p", self.target.folder(self.name), os.path.dirname(self.target.lock(self.name))])
        started = time.monotonic()
        sent = stream(sender_argv, receiver_argv, self.transfer_timeout)
        seconds = time.monotonic() - started
        kept = (set(target_subs) - set(steps["leftovers"]) - set(steps["prune"])) | {steps["generation"]}
        document = metadata_for(source, self.target.folder(self.name), kept)
        if not swap:
            staged = {"generation": steps["generation"], "uuid": steps["uuid"], "expected": self.expected,
                      "prune": ["gen-%d" % number for number in steps["prune"]], "template": document}
            path = os.path.join(self.target.folder(self.name), STAGED % steps["generation"])
            self.target.run(["sh", "-c", 'cat > "$1.tmp" && mv -f "$1.tmp" "$1"', "myaas-stage", path],
                            data=json.dumps(staged, indent=2, sort_keys=True).encode())
            return sent, seconds
        self.target.run(["sh", "-c", SWAP_SCRIPT, "myaas-swap", self.target.folder(self.name),
                         self.target.lock(self.name), str(self.lock_timeout), self.expected, str(steps["generation"]),
                         steps["uuid"]]
                        + ["gen-%d" % number for number in steps["prune"]],
                        data=json.dumps(document, indent=2, sort_keys=True).encode())
        return sent, seconds


def stream(sender_argv, receiver_argv, timeout):
    """Pipe the sender's stdout into the receiver's stdin; returns the bytes that crossed. Raises MyaasError."""
    with subprocess.Popen(sender_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as sender, \
            subprocess.Popen(receiver_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) as receiver:
        counted = [0]
        errors = {}

        def pump():
            try:
                for chunk in iter(lambda: sender.stdout.read(CHUNK), b""):
                    receiver.stdin.write(chunk)
                    counted[0] += len(chunk)
            except OSError:
                # The receiver ended early (its exit code says why): the sender, blocked on a full pipe,
                # would otherwise wait for transfer_timeout.
                sender.kill()
            finally:
                try:
                    receiver.stdin.close()
                except OSError:
                    pass

        def drain(name, handle):
            errors[name] = handle.read()

        threads = [threading.Thread(target=pump, daemon=True),
                   threading.Thread(target=drain, args=("send", sender.stderr), daemon=True),
                   threading.Thread(target=drain, args=("receive", receiver.stderr), daemon=True)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        try:
            receive_rc = receiver.wait(timeout=max(1, deadline - time.monotonic()))
            send_rc = sender.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            sender.kill()
            receiver.kill()
            raise MyaasError("The transfer did not finish within transfer_timeout (%d s); the receiver keeps "
                             "its current generation, and the next run starts again." % timeout)
        for thread in threads:
            thread.join(timeout=10)
    if send_rc != 0 or receive_rc != 0:
        def words(name):
            return (errors.get(name) or b"").decode("utf-8", "replace").strip()[-1000:]
        raise MyaasError("The transfer failed (btrfs send exit code %d: %s; btrfs receive exit code %d: %s). The "
                         "receiver keeps its current generation; the next run starts again."
                         % (send_rc, words("send") or "-", receive_rc, words("receive") or "-"))
    return counted[0]
