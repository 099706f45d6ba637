#!/usr/bin/python
# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: myaas_instance
short_description: A database server on a copy-on-write clone of a template
version_added: 0.1.0
description:
  - Snapshots the current generation of a template (M(myaas.myaas.myaas_template)) with btrfs, starts a
    server container of the template's engine and image on the snapshot, with its own port and
    credentials, and returns the connection data once a real login with them runs C(SELECT 1).
  - A clone that does not come up in time is removed whole (container, volume, subvolume), and the
    error shows the last lines of its server log.
  - Credentials are applied at server start through an init file inside the datadir, never through
    argv or the container's environment; they are kept on the pool in a file only root can read.
  - Instances restart with the Docker daemon and the host (restart policy C(unless-stopped)), with the
    same port and credentials.
author: MyAAS team (@myaas)
extends_documentation_fragment:
  - myaas.myaas.pool
options:
  name:
    description: Name of the instance. 1 to 63 characters out of C([a-z0-9_-]), starting with a letter or digit.
    type: str
    required: true
  template:
    description:
      - The template to clone. Required to create an instance.
      - When the template keeps warm clones (C(warm) of M(myaas.myaas.myaas_template)) and the request asks for
        its current generation on their bind address, with no O(port), O(memory), O(cpus) or O(upgrade_to), a
        warm clone is taken and given the account, faster than any server starts. Another one is started after
        the module returned.
      - Naming another template than an existing instance's is an error; use O(state=reset) to refresh data.
    type: str
  state:
    description:
      - V(present) creates the instance, or starts it if it is stopped; a running one is left alone.
      - V(started) is the same as V(present).
      - V(reset) replaces its data with the template's current generation (or the one O(generation) or O(as_of)
        names), or with O(bookmark) when given; same name, port and credentials.
      - V(saved) freezes its data as O(bookmark) - the server is shut down cleanly, the datadir snapshotted
        read-only, and the server started again (same port, same credentials). An existing bookmark of that
        name is left as it is.
      - V(stopped) stops its server, keeping its data.
      - V(absent) removes container, volume, data and bookmarks; with O(bookmark), only that bookmark.
    type: str
    choices: [present, started, stopped, reset, saved, absent]
    default: present
  bookmark:
    description:
      - A bookmark of the instance, for O(state=saved), O(state=reset) and O(state=absent). Bookmarks are listed
        by M(myaas.myaas.myaas_info), removed with the instance, and can be branched into a template
        (M(myaas.myaas.myaas_template) with O(myaas.myaas.myaas_template#module:from_bookmark)).
      - Same rules as O(name).
    type: str
  generation:
    description:
      - Clone this generation of the template instead of the current one (to create, or with O(state=reset)).
        The template keeps older generations with
        O(myaas.myaas.myaas_template#module:keep_generations).
      - On an existing instance with O(state=present), a different generation is an error.
    type: int
  as_of:
    description:
      - Clone the newest generation imported at or before this time - an ISO 8601 date or date and time (UTC
        unless it gives an offset; a date is its midnight), or a duration ago such as V(1d) or V(12h).
      - Like O(generation), which it excludes.
    type: str
  upgrade_to:
    description:
      - An upgrade rehearsal - the instance's snapshot of the template is upgraded in place to the server of this
        image (a newer major version of the template's engine, e.g. V(mariadb:11.8), V(mysql:9.7),
        V(postgres:17)) the way production would be upgraded, and the instance runs on this image.
      - MariaDB - the new server on the old datadir, then C(mariadb-upgrade). MySQL - the new server's own upgrade
        at start. PostgreSQL - C(pg_upgrade --link) into a new datadir inside the snapshot, with the old major's
        binaries taken from the template's image.
      - The upgraded data is then checked (row counts of every table against the template's, the template's
        C(checks), every view and routine compiled) and the report returned as RV(upgrade); it is also kept beside
        the template, where M(myaas.myaas.myaas_info) shows it. A rehearsal that cannot finish fails with the
        problem named and leaves nothing behind. The template is never touched.
      - O(state=reset) of an upgraded instance upgrades afresh from the template. On an existing instance with
        O(state=present), another value is an error.
    type: str
  upgrade_timeout:
    description: Seconds each step of an upgrade (C(pg_upgrade), the new server's start) may take.
    type: int
    default: 1800
  ttl:
    description:
      - How long the instance may live before the reaper (playbook C(reap.yml)) removes it. Seconds, or a
        number with a unit C(s), C(m), C(h), C(d), C(w) (e.g. C(8h)), at most ten years. V(0) means no expiry.
      - Counted from the instance's creation. On an existing instance, a different value changes its expiry
        (C(changed=true), shown in the diff); left out, the expiry stays. A new instance without it never expires.
    type: str
  protected:
    description:
      - Kept by the reaper even when expired. V(true) protects with no end; a duration (seconds, or a number with
        a unit C(s), C(m), C(h), C(d), C(w), e.g. C(7d)) is a lease - protected for that long from when it was
        granted, then reaped like any other instance once expired. V(false) lifts the protection.
      - Applied to an existing instance when given; a new one defaults to V(false). Asked again with the same
        lease, the lease keeps its end (C(changed=false)); another duration starts a new lease from now.
    type: raw
  max_bytes:
    description:
      - The instance's disk quota - how much its data may grow beyond the template's. Bytes, or a number with a
        unit (C(20G), C(512M)); at least C(64M). V(0) or V(none) lifts it.
      - The server keeps it itself - MariaDB and MySQL run the clone with InnoDB's system tablespace capped at the
        template's size plus O(max_bytes), and only InnoDB tables. A write past it fails with the server's own
        error C(1114 The table 'T' is full) and the server goes on answering. Behind it, the clone's btrfs quota
        group gets a limit of twice the capped size (the template's system tablespace plus O(max_bytes)), plus 512
        MiB, that guards the pool from what the cap does not count.
      - "Needs a template whose tables are in the system tablespace - imported with
        O(myaas.myaas.myaas_template#module:tuning) C({innodb_file_per_table: 0}); refused, before anything is made,
        for one whose tables have files of their own, and for PostgreSQL, which has no cap of its own and
        PANICs when a btrfs limit stops its write-ahead log."
      - Changing it on a running instance restarts its server cleanly (its cap is a server argument); a stopped
        one gets it at its next start. A request with a quota is never given a warm clone.
      - Applied to an existing instance when given (a reset keeps it); a new one has none unless given. The pool's
        quota groups are turned on the first time an instance asks for a quota.
    type: str
  default_max_bytes:
    description:
      - The quota of a new instance that gives no O(max_bytes), where its template takes quotas (see O(max_bytes);
        ignored for the others); playbook variable C(myaas_max_bytes). Never applied to an existing instance.
    type: str
  owner_max_bytes:
    description:
      - The owner's disk budget - the sum of C(max_bytes) their instances may hold on this pool (playbook
        variable C(myaas_owner_max_bytes)). With it, each new instance of the owner must give O(max_bytes), and
        is refused when the owner's other instances leave less of the budget. Checked too when an instance's
        O(max_bytes) or O(owner) changes. Instances that can take no quota (see O(max_bytes)) are outside budgets.
    type: str
  owner:
    description:
      - Who the instance is for (free text). Applied to an existing instance when given; a new one defaults to
        O(requester), else to the user the module runs as.
    type: str
  requester:
    description:
      - Who asks (the AWX user, or the user behind sudo; the playbooks set it). An existing instance whose owner
        is someone else is refused - its credentials are not returned, and it is not reset, stopped or
        dropped - unless O(admin) is set.
      - Without it, nothing is checked (a root shell driving the module directly).
    type: str
  admin:
    description: The run is an admin's (an admin-only AWX job template); it may touch anyone's instance.
    type: bool
    default: false
  bind_address:
    description: Host address (IPv4 or IPv6) the server's port is published on.
    type: str
    default: 127.0.0.1
  public_host:
    description: The host name returned to users for connecting. Defaults to the target's FQDN.
    type: str
  port:
    description:
      - A fixed host port. Without it, the lowest free port of O(port_range) is taken. A port another instance
        holds is refused.
      - The port of an existing instance cannot change; asking for another one is an error.
    type: int
  port_range:
    description:
      - Range of host ports for instances, as C(LOW-HIGH).
      - If not set, the environment variable E(MYAAS_PORT_RANGE) of the module's process, then the default. Two
        pools on one host (each team its own) keep apart by ranges that do not overlap.
    type: str
    default: 13306-13999
  user:
    description: The database account created for the instance (all privileges).
    type: str
    default: dev
  password:
    description: Its password. Without it, a random one is generated (and returned).
    type: str
  database:
    description:
      - The database the DSN points at. Defaults to the schema the template's dump was loaded into, else the
        first database the dump made itself (as recorded in the template), else V(postgres) for PostgreSQL.
    type: str
  memory:
    description:
      - Memory limit of the container, as Docker reads it (e.g. C(1g)). Applied to an existing instance's
        running container with C(docker update).
    type: str
  cpus:
    description: CPU limit of the container (e.g. C(1.5)). Applied to an existing instance like O(memory).
    type: str
  wait_timeout:
    description: Seconds to wait for a successful login before the instance is given up and removed.
    type: int
    default: 60
  lock_timeout:
    description: Seconds to wait for another run on the same instance (or port allocation) to finish.
    type: int
    default: 300
requirements:
  - PyMySQL on the target, for the login check (with C(cryptography) for MySQL's C(caching_sha2_password);
    the role M(myaas.myaas.host) installs both), or psycopg2 for PostgreSQL.
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing anything.
    support: full
  diff_mode:
    description: Returns the metadata before and after, in diff mode.
    support: full
"""

EXAMPLES = r"""
- name: A fresh copy of the shop database for today
  myaas.myaas.myaas_instance:
    name: shop-alice
    template: shop
    ttl: 8h
    owner: alice
  register: db

- name: Show how to connect
  ansible.builtin.debug:
    msg: "mysql --protocol=TCP -h {{ db.instance.host }} -P {{ db.instance.port }} -u {{ db.instance.user }} -p"

- name: Keep it through the release week, then let the reaper take it once it has expired
  myaas.myaas.myaas_instance:
    name: shop-alice
    protected: 7d

- name: Throw away today's writes
  myaas.myaas.myaas_instance:
    name: shop-alice
    state: reset

- name: Save the state before a migration
  myaas.myaas.myaas_instance:
    name: shop-alice
    state: saved
    bookmark: before-migration

- name: Go back to it
  myaas.myaas.myaas_instance:
    name: shop-alice
    state: reset
    bookmark: before-migration

- name: Yesterday's data next to today's
  myaas.myaas.myaas_instance:
    name: shop-alice-yesterday
    template: shop
    as_of: 1d

- name: What breaks if the shop database moves to MariaDB 11.8?
  myaas.myaas.myaas_instance:
    name: shop-upgrade
    template: shop
    upgrade_to: mariadb:11.8
    ttl: 1d
  register: rehearsal

- name: Show what the new version refused or changed
  ansible.builtin.debug:
    var: rehearsal.upgrade.problems

- name: Drop it
  myaas.myaas.myaas_instance:
    name: shop-alice
    state: absent
"""

RETURN = r"""
instance:
  description: The instance and how to connect to it; null after O(state=absent).
  returned: always
  type: dict
  contains:
    name: {description: Instance name., type: str, sample: shop-alice}
    template: {description: Template it was cloned from., type: str, sample: shop}
    generation: {description: Template generation its data comes from., type: int, sample: 4}
    engine: {description: Database engine., type: str, sample: mariadb}
    host: {description: Host name to connect to., type: str, sample: db1.example.org}
    port: {description: Port to connect to., type: int, sample: 13306}
    user: {description: Database account., type: str, sample: dev}
    password: {description: Its password., type: str}
    database: {description: The default database., type: str, sample: shop}
    dsn:
      description: A URL with all of the above, user and password percent-encoded; drivers take it as it is.
      type: str
      sample: "mysql://dev:secret@db1.example.org:13306/shop"
    client_command:
      description: The engine's command-line client, ready to paste into a shell.
      type: str
      sample: "mariadb --protocol=TCP --max-allowed-packet=1G -h db1.example.org -P 13306 -u dev -psecret shop"
    container: {description: Name of the server container., type: str, sample: myaas-shop-alice}
    created_at: {description: "Creation time, UTC, ISO 8601.", type: str}
    expires_at: {description: When the reaper may remove it; null for never., type: str}
    owner: {description: Who it is for., type: str}
    protected: {description: Whether the reaper leaves it alone (until C(protected_until) when that is set)., type: bool}
    max_bytes: {description: "Its disk quota in bytes (growth of its data, see O(max_bytes)); null for none.", type: int}
    protected_until:
      description: "When a protection lease ends, UTC, ISO 8601; null for no lease (protected with no end, or not at all)."
      type: str
    ready_seconds: {description: Seconds from the snapshot to the first successful login., type: float, returned: when created or reset}
    cow: {description: How the data was copied., type: str, sample: btrfs-snapshot}
    bookmark: {description: The bookmark its data was last reset to; null after a reset to a template., type: str}
    bookmarks:
      description: Its bookmarks, by name, each with C(created_at) and the C(template) and C(generation) its data
        came from.
      type: dict
      sample: {before-migration: {created_at: "2026-11-24T09:12:00+00:00", template: shop, generation: 3}}
    timings:
      description:
        - Seconds per step - module_start (the process's start and imports), lock (waiting for the instance's lock),
          then for a clone snapshot, prepare (init file, volume, port), container (create and start),
          server_start_and_login, and metadata.
        - For a warm clone taken, take (the clone moved to the instance), account (made over the server's socket)
          and login instead.
      type: dict
      returned: when created or reset
    warm_clone:
      description: Where the warm clone the instance was taken from waited (see C(warm) in
        M(myaas.myaas.myaas_template)); its container keeps that clone's name.
      type: str
      returned: when taken from a warm clone
upgrade:
  description:
    - The report of an upgrade rehearsal (O(upgrade_to)); in check mode only the images.
    - Also in the failure of a rehearsal that could not finish, with C(error).
  returned: when O(upgrade_to) applies (creating or resetting an upgraded instance)
  type: dict
  contains:
    ok: {description: True when nothing in C(problems)., type: bool}
    image_from: {description: The template's image., type: str, sample: "mariadb:10.11"}
    image_to: {description: The image upgraded to., type: str, sample: "mariadb:11.8"}
    version_from: {description: The template's server version., type: str, sample: "10.11.19"}
    version_to: {description: The upgraded server's version., type: str, sample: "11.8.9-MariaDB"}
    steps:
      description: Seconds per step - versions, old_binaries and pg_upgrade (PostgreSQL), ownership,
        server_start, mariadb_upgrade (MariaDB) or analyze (PostgreSQL), row_counts, checks, views_and_routines,
        shutdown.
      type: dict
    seconds: {description: Seconds of the whole rehearsal., type: float}
    warnings: {description: What the upgrade tools and the new server's log warned about., type: list, elements: str}
    errors: {description: Errors in the new server's start-up log., type: list, elements: str}
    server_upgrade:
      description: The lines in which MySQL's server reports its own upgrade at start (empty when the version did
        not change, and for the other engines).
      type: list
      elements: str
    row_counts:
      description: Rows of every table before (the template's count) and after the upgrade.
      type: dict
      sample: {film: {before: 1000, after: 1000}}
    checks: {description: The template's checks run again on the upgraded data., type: list, elements: dict}
    objects_checked: {description: Views and routines compiled on the new server., type: int}
    problems:
      description: What the new version refused or changed - each with C(kind) (view, procedure, function,
        routine, extension, rows, check, server_log), C(name) and C(problem).
      type: list
      elements: dict
    finished_at: {description: "When the rehearsal ended, UTC, ISO 8601.", type: str}
operation:
  description: What was done - create, start, stop, reset, save, drop_bookmark, update (settings only), remove or none.
  returned: always
  type: str
"""

import ipaddress
import socket

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances.manager import InstanceManager
from ansible_collections.myaas.myaas.plugins.module_utils.module_runner import detach, run_module
from ansible_collections.myaas.myaas.plugins.module_utils.names import check_image, check_name
from ansible_collections.myaas.myaas.plugins.module_utils.host.metrics import missing_library
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.inventory import update_metrics
from ansible_collections.myaas.myaas.plugins.module_utils.instances.ports import parse_range
from ansible_collections.myaas.myaas.plugins.module_utils.instances.quota import parse_size
from ansible_collections.myaas.myaas.plugins.module_utils.host.runner import Runner
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import parse_protection, parse_ttl


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            template=dict(type="str"),
            state=dict(type="str", default="present",
                       choices=["present", "started", "stopped", "reset", "saved", "absent"]),
            bookmark=dict(type="str"),
            generation=dict(type="int"),
            as_of=dict(type="str"),
            pool=dict(type="path", default="/var/lib/myaas"),
            ttl=dict(type="str"),
            protected=dict(type="raw"),
            owner=dict(type="str"),
            max_bytes=dict(type="str"),
            default_max_bytes=dict(type="str"),
            owner_max_bytes=dict(type="str"),
            requester=dict(type="str"),
            admin=dict(type="bool", default=False),
            bind_address=dict(type="str", default="127.0.0.1"),
            public_host=dict(type="str"),
            port=dict(type="int"),
            port_range=dict(type="str", default="13306-13999", fallback=(env_fallback, ["MYAAS_PORT_RANGE"])),
            user=dict(type="str", default="dev"),
            password=dict(type="str", no_log=True),
            database=dict(type="str"),
            memory=dict(type="str"),
            cpus=dict(type="str"),
            wait_timeout=dict(type="int", default=60),
            lock_timeout=dict(type="int", default=300),
            upgrade_to=dict(type="str"),
            upgrade_timeout=dict(type="int", default=1800),
        ),
        required_if=[("state", "saved", ["bookmark"])],
        mutually_exclusive=[("generation", "as_of"), ("bookmark", "generation"), ("bookmark", "as_of"),
                            ("bookmark", "upgrade_to")],
        supports_check_mode=True,
    )

    def action():
        params = dict(module.params)
        check_name("instance", params["name"])
        if params["template"] is not None:
            check_name("template", params["template"])
        if params["database"] is not None:
            check_name("database", params["database"])
        check_name("user", params["user"])
        if params["upgrade_to"] is not None:
            check_image(params["upgrade_to"])
        if params["bookmark"] is not None:
            check_name("bookmark", params["bookmark"])
            if params["state"] not in ("saved", "reset", "absent"):
                raise MyaasError("bookmark is for state=saved, reset or absent, not %s." % params["state"])
        params["ttl"] = None if params["ttl"] is None else parse_ttl(params["ttl"])
        params["protected"], params["protection_lease"] = parse_protection(params["protected"])
        params["max_bytes"] = parse_size("max_bytes", params["max_bytes"])
        params["owner_max_bytes"] = parse_size("owner_max_bytes", params["owner_max_bytes"])
        params["default_max_bytes"] = parse_size("default_max_bytes", params["default_max_bytes"])
        params["port_range"] = parse_range(params["port_range"])
        params["public_host"] = params["public_host"] or socket.getfqdn()
        try:
            ipaddress.ip_address(params["bind_address"])
        except ValueError:
            raise MyaasError("bind_address %r is not an IP address of this host (e.g. 127.0.0.1, 0.0.0.0, ::1)."
                             % params["bind_address"])
        runner = Runner(module)
        runner.require("btrfs", "docker")
        manager = InstanceManager(Pool(params["pool"], runner), Docker(runner), get_engine, params, module.check_mode)
        result = manager.apply()
        later = [manager.after_return] if manager.after_return else []     # a warm clone's replacement
        ready = (result.get("instance") or {}).get("ready_seconds")
        if ready is not None and not module.check_mode:
            warning = missing_library()
            result["warnings"] = result.get("warnings", []) + ([warning] if warning else [])
            # Only the event: writing the file reads every instance's size (du walks its files), more work
            # than the request itself on a busy pool. The reaper's next run writes it.
            later.append(lambda: update_metrics(manager.pool, manager.docker, write=False, ready_seconds=ready))
        if later:
            # After this run returned: the developer waits for neither.
            detach(lambda: [work() for work in later])
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
