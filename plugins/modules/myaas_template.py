#!/usr/bin/python
# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: myaas_template
short_description: Import an SQL dump into a frozen copy-on-write template
version_added: 0.1.0
description:
  - Imports a dump into a database server's datadir on the MyAAS pool (a btrfs subvolume), with the
    server tuned for bulk load, shuts the server down cleanly, verifies the shutdown from its log and
    freezes the datadir read-only. Instances (M(myaas.myaas.myaas_instance)) are snapshots of it.
  - Idempotent. The template records the dump's size, mtime and sha256, the engine, the image (by id)
    and the import options; when none changed the module returns C(changed=false) without starting
    anything. The dump is hashed only when its size or mtime moved.
  - Atomic. The import goes into a new subvolume that replaces the current generation only once it is
    complete and frozen. A failed, timed-out or killed import leaves the previous generation serving;
    the half-made subvolume and container are removed, by the next run if this one was killed.
  - Runs for one template are serialised by a lock on the pool; different templates import in parallel.
  - With O(from_instance), the template (or its next generation) is a branch of an instance's data instead of
    an import. The instance's server is shut down cleanly, its datadir is snapshotted read-only, and the
    server is started again if it was running. No byte is copied. With O(from_bookmark), the branch is made
    of one of the instance's bookmarks, and the instance is not touched.
  - O(keep_generations) keeps older generations on the pool; M(myaas.myaas.myaas_instance) clones them with
    O(myaas.myaas.myaas_instance#module:generation) or O(myaas.myaas.myaas_instance#module:as_of).
  - Tested end to end on MariaDB 10.11 and 11.8, MySQL 9.7 and PostgreSQL 15, on the official images and on
    the offline ones the role M(myaas.myaas.host) builds. MySQL 8.4 works through O(image) but is not tested.
author: MyAAS team (@myaas)
extends_documentation_fragment:
  - myaas.myaas.pool
  - myaas.myaas.warm_clones
options:
  name:
    description: Name of the template. 1 to 63 characters out of C([a-z0-9_-]), starting with a letter or digit.
    type: str
    required: true
  src:
    description:
      - Path on the target of the dump. Plain SQL or compressed with gzip, bzip2, xz or zstd, recognised
        by content, not by suffix. It is streamed into the server, never staged.
      - With O(engine=postgresql), also a C(pg_dump) custom-format archive (C(pg_dump -Fc)).
      - Or a physical backup, also recognised by content - MariaDB a C(mariadb-backup --backup --stream=xbstream)
        file (plain, gz, zst, xz, bz2) or a backup folder; PostgreSQL a C(pg_basebackup) folder (C(-Ft) with
        C(base.tar) and C(pg_wal.tar), compressed or not, or C(-Fp)) or a C(base.tar) with its WAL; MySQL a
        folder made by C(CLONE LOCAL DATA DIRECTORY), or a tar of it. It is unpacked (or copied, with reflinks
        where the pool allows) into the new generation, prepared with the engine's own tool from the image
        (C(mariadb-backup --prepare); PostgreSQL recovers with the WAL the backup carries), and then goes
        through what every import does. The backup itself is never changed. A backup of another major
        version than the image's server is refused. A folder counts as unchanged while its files' names,
        sizes and times are.
      - An incremental backup (C(mariadb-backup --incremental-basedir), C(pg_basebackup --incremental) from
        PostgreSQL 17) is applied to the backup the current generation was made from (kept as its base), and the
        new generation shares every unchanged block with the old one; one that does not follow that backup is
        refused.
      - Required with O(state=present), unless O(from_instance) is given.
    type: path
  from_instance:
    description:
      - Make the template from this instance's data (a branch) instead of a dump.
      - Every run makes a new generation of the instance's data as it is then; use O(from_bookmark) for a
        branch that a second run leaves alone.
      - The engine and image are the instance's; O(engine), O(image) and the import options are not used.
      - The instance's database account is in the data; instances of the branch lock it.
    type: str
  from_bookmark:
    description:
      - With O(from_instance), make the template from this bookmark of the instance
        (M(myaas.myaas.myaas_instance) with O(myaas.myaas.myaas_instance#module:state=saved)).
      - Idempotent - a template whose current generation is this bookmark is not changed.
    type: str
  requester:
    description:
      - Who asks, with O(from_instance) (the playbooks set it). Only the instance's owner may branch it, and only
        into a new template or one of their own branches, unless O(admin) is set.
    type: str
  admin:
    description: The run is an admin's; it may branch anyone's instance into any template.
    type: bool
    default: false
  engine:
    description:
      - The database engine. V(mysql) is Oracle's MySQL 8.4 or 9.x; MySQL 8.0 dumps load into it, and into
        MariaDB 11.8 (O(image)), but not into MariaDB 10.11, which lacks MySQL 8's collations.
    type: str
    choices: [mariadb, mysql, postgresql]
    default: mariadb
  image:
    description:
      - The server image. Any image that ships the engine's server binaries and its usual OS account
        (C(mysql), C(postgres)) works; MyAAS starts the server itself and ignores the image's entrypoint.
      - Defaults to the image the host role provisioned for the engine (recorded in C(host.json) on the
        pool), else to the official V(mariadb:10.11), V(mysql:9.7) or V(postgres:15).
    type: str
  restore_jobs:
    description:
      - How many connections load a dump at once. Defaults to the number of CPUs; V(1) loads on one.
      - C(pg_dump -Fc) archives are restored with C(pg_restore --jobs).
      - Plain SQL dumps written by C(mysqldump) or C(mariadb-dump) have the rows of each table dealt across the
        connections, after the table is made and before anything that follows its rows (keys, triggers, the next
        table, views) runs, in the dump's order. C(LOCK TABLES) lines are left out then. On two CPUs this loads
        rows about 1.7 times as fast as one connection.
      - Other SQL dumps load on one connection, statement after statement.
    type: int
  database:
    description:
      - The schema a dump is loaded into when it does not select its own (no C(CREATE DATABASE) or
        C(USE)). Defaults to O(name). Dumps that name their schemas load as they are.
    type: str
  state:
    description: V(present) imports when the template is missing or out of date; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: Import again even if nothing changed.
    type: bool
    default: false
  warm:
    description:
      - How many warm clones to keep - servers started on the current generation, with no account anyone knows,
        each waiting for an instance request (M(myaas.myaas.myaas_instance) takes one and gives it the account,
        faster than a server starts). Each costs a server's memory; V(0) removes them.
      - A new generation replaces them. They are refilled after a request took one, by every run of this module
        and by the reaper. Without this option, the number set before is kept.
    type: int
  post_import_sql:
    description:
      - SQL files run, in order, after the dump and before freezing (anonymise, trim, add grants).
      - Their failure fails the import like a dump error, and their content is part of what is compared.
    type: list
    elements: path
    default: []
  masking:
    description:
      - Masking rules, applied inside the import server after the dump and O(post_import_sql), before the template
        is frozen. Keys C(columns) (C(database.table.column) - C(schema.table.column) for PostgreSQL - to a
        transform), C(truncate) (tables to empty) and C(keep) (columns reviewed and left as they are, each with
        its reason).
      - Transforms are C(email), C(name), C(phone), C(credit_card), C(ip), C(date), C(text), C(hash), C(null) and
        C(fixed:VALUE). They are deterministic - keyed by a secret the pool keeps in C(masking.key), root-only - so
        one original value gets one replacement in every template of the pool and in every later import.
      - Fails closed. Every column is classified, by its name and by a sample of its values; a column that looks
        personal and that no rule covers fails the import, and the error lists them with rules to paste.
      - Nothing of a masked or truncated original stays in the template's files - masked tables are rebuilt,
        old row versions are purged (MariaDB zero-fills freed space, MySQL's undo tablespaces are truncated), and
        the redo log (MariaDB, MySQL) or WAL (PostgreSQL) is replaced after the clean shutdown. Every engine.
      - Without it, imports are not masked, and the result lists the columns that look personal as a warning.
    type: dict
  checks:
    description:
      - SQL queries run in the template's database after masking; each must return exactly one row with one true
        value (V(1), V(t), V(true)). One that fails, errors or returns anything else fails the import.
    type: list
    elements: str
    default: []
  max_shrink:
    description:
      - The share of its rows a table may lose since the current generation. Every import records each table's
        exact row count; a table that lost more fails the import, naming the table and both counts. V(1.0) turns
        the check off. O(force) skips neither this nor O(checks).
    type: float
    default: 0.5
  tuning:
    description:
      - "Server settings for the import only, as C(option: value), e.g. C(innodb_buffer_pool_size: 4G).
        They override the bulk-load defaults and never reach instances' servers."
      - "One shapes the data that instances get: C(innodb_file_per_table: 0) (MariaDB, MySQL) puts the tables in
        InnoDB's system tablespace, which is what lets instances have a disk quota
        (M(myaas.myaas.myaas_instance) O(myaas.myaas.myaas_instance#module:max_bytes))."
      - By default the import server's buffers are sized from the host's memory (MariaDB's buffer pool a
        quarter of it, at most 8 GiB; PostgreSQL's C(shared_buffers) an eighth, at most 4 GiB).
    type: dict
    default: {}
  keep_generations:
    description:
      - How many generations to keep on the pool, the current one included. Each is listed by
        M(myaas.myaas.myaas_info) with its import time and source, and can be cloned.
      - Older generations are removed after a new one is made; instances cloned from them keep their data.
    type: int
    default: 1
  import_timeout:
    description: Seconds the import (dump and post-import SQL) may take before it is stopped and discarded.
    type: int
    default: 21600
  start_timeout:
    description: Seconds the import server may take to start.
    type: int
    default: 120
  stop_timeout:
    description: Seconds the import server may take to shut down cleanly before the import is discarded.
    type: int
    default: 900
  wait_timeout:
    description: With O(from_instance), seconds the instance's server may take to answer again after the branch.
    type: int
    default: 60
  lock_timeout:
    description: Seconds to wait for another run on the same template (or, with O(from_instance), instance) to finish.
    type: int
    default: 3600
requirements:
  - The pool and Docker engine provisioned by the role M(myaas.myaas.host).
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing anything.
    support: full
  diff_mode:
    description: Returns the metadata before and after, in diff mode.
    support: full
"""

EXAMPLES = r"""
- name: Import last night's dump of the shop database
  myaas.myaas.myaas_template:
    name: shop
    src: /var/lib/myaas/dumps/shop.sql.gz

- name: Import with an anonymising script and a bigger buffer pool
  myaas.myaas.myaas_template:
    name: crm
    src: /backups/crm.sql.zst
    image: myaas/mariadb:10.11
    post_import_sql:
      - /etc/myaas/anonymise-crm.sql
    tuning:
      innodb_buffer_pool_size: 4G

- name: A template a company may hand out - masked, and checked before it goes live
  myaas.myaas.myaas_template:
    name: shop
    src: /var/lib/myaas/dumps/shop.sql.gz
    masking:
      columns:
        shop.customer.email: email
        shop.customer.full_name: name
        shop.customer.card_number: credit_card
        shop.customer.notes: "null"
      truncate: [shop.audit_log]
      keep:
        shop.product.name: product names are public
    checks:
      - SELECT COUNT(*) > 1000 FROM customer
    max_shrink: 0.2

- name: Keep a week of nightly imports, to clone the data of any day
  myaas.myaas.myaas_template:
    name: shop
    src: /var/lib/myaas/dumps/shop.sql.gz
    keep_generations: 7

- name: Share my instance's state with a colleague, as a template of its own
  myaas.myaas.myaas_template:
    name: shop-bug-4711
    from_instance: shop-alice
    requester: alice

- name: A branch of a bookmark (the instance keeps running)
  myaas.myaas.myaas_template:
    name: shop-before-migration
    from_instance: shop-alice
    from_bookmark: before-migration

- name: Remove a template (instances made from it keep working)
  myaas.myaas.myaas_template:
    name: crm
    state: absent
"""

RETURN = r"""
template:
  description: The template after the run; null after O(state=absent).
  returned: always
  type: dict
  contains:
    name: {description: Template name., type: str, sample: shop}
    engine: {description: Engine., type: str, sample: mariadb}
    image: {description: Image the template was imported with., type: str, sample: "mariadb:10.11"}
    image_id: {description: Id of that image., type: str}
    generation: {description: Number of the current generation; it grows with every import., type: int, sample: 3}
    path: {description: The generation's subvolume on the pool., type: str}
    source:
      description:
        - The dump, as imported; for a branch, the instance, bookmark, template and generation it was made from,
          and the accounts its clones lock.
      type: dict
      sample: {path: /var/lib/myaas/dumps/shop.sql.gz, sha256: 9f86d0..., bytes: 602701, mtime: 1764000000.0}
      contains:
        backup:
          description: For a physical backup, its kind - C(mariadb-backup), C(pg_basebackup) or C(mysql-clone).
          type: str
          returned: for physical backups
        server_version:
          description: The version of the server the backup was taken from, where the backup says it.
          type: str
          returned: for physical backups
    owner: {description: Who made a branch (its requester); null for an import., type: str, returned: for branches}
    generations:
      description: The generations kept on the pool, oldest first, each with C(generation), C(path), C(imported_at)
        and C(source).
      type: list
      elements: dict
    imported_at: {description: "When the import finished, UTC, ISO 8601.", type: str}
    import_seconds: {description: Duration of the import., type: float}
    load_connections:
      description: How many connections loaded the dump's rows (see O(restore_jobs)); V(0) for a physical backup.
      type: int
    rate: {description: Dump bytes imported per second., type: int}
    timings:
      description: Seconds per step of the import - restore (a physical backup unpacked and prepared), start, load
        (dump and post-import SQL), checks_and_masking, shutdown_and_scrub.
      type: dict
    size_bytes: {description: Size of the generation on the pool., type: int}
    pool_bytes_added:
      description:
        - What the import took from the pool's free space, measured after a sync - the new generation and, for a
          physical backup, its base. For an incremental backup, about what changed. Other writes to the pool
          during the import count too.
      type: int
    base:
      description:
        - For a C(mariadb-backup) backup and a PostgreSQL 17 or later C(pg_basebackup), the generation's base - the
          backup as restored, before any server ran on it, kept read-only beside the generation (sharing its
          blocks). The next incremental backup is applied to a snapshot of it.
      type: str
      returned: for physical backups that can be followed by incremental ones
    options: {description: Import options that decide whether a dump must be imported again., type: dict}
    row_counts:
      description: Exact row count of every table, as C(database.table) (PostgreSQL C(schema.table)).
      type: dict
      sample: {shop.customers: 6000}
    masking:
      description: What masking did - C(columns) (column to transform), C(truncated), C(kept) (with reasons),
        C(rebuilt) (PostgreSQL materialized views refreshed from the masked tables),
        C(rules_sha256) and C(seconds); null when the template is not masked.
      type: dict
    checks:
      description: The O(checks) that passed, each with C(sql) and what it C(returned).
      type: list
      elements: dict
    personal_columns:
      description: Columns that look personal, each with C(column), C(why) and a C(suggest)ed transform.
        Without O(masking), a warning.
      type: list
      elements: dict
    databases:
      description: The databases (schemas) the template holds, read from the server after the import.
      type: list
      elements: str
      sample: [shop]
    definers_created:
      description:
        - Accounts named as DEFINER by views, routines, triggers or events that the dump did not create.
          Each was made as a locked account (no login) with all privileges on the template's databases,
          so that those objects work in every instance.
      type: list
      elements: str
      sample: ["app@10.0.0.%"]
    roles_created:
      description:
        - PostgreSQL - roles that the dump's statements name (C(OWNER TO), C(GRANT), C(REVOKE), policies,
          default privileges, C(SET ROLE)) but that it does not create and the server did not have. Each was
          made NOLOGIN, without a password, before the dump loaded, so that the objects keep their owners
          and grants.
      type: list
      elements: str
      sample: [ledger_owner]
    passwords_removed:
      description:
        - PostgreSQL - roles that had a password after the load (a C(pg_dumpall) dump brings its roles with
          production's password verifiers). Each keeps LOGIN and loses its password, so that no production
          password logs in to an instance; the old catalog rows and the WAL that held them were removed.
        - MariaDB and MySQL - accounts (C(user@host)) that could log in after the load (a dump of the C(mysql)
          schema, C(--all-databases), brings production's). Each is locked in every instance.
      type: list
      elements: str
      sample: [app]
reason:
  description: Why the template was imported.
  returned: changed
  type: str
  sample: the dump changed
removed_leftovers:
  description: Containers and subvolumes of an earlier, interrupted import that were removed first.
  returned: when an import ran
  type: list
  elements: str
warm:
  description: The template's warm clones after the run.
  returned: when the template keeps warm clones, or O(warm) was given
  type: dict
  contains:
    count: {description: How many are kept., type: int, sample: 2}
    ready: {description: How many are ready now., type: int, sample: 2}
    made: {description: How many this run started., type: int}
    removed: {description: "How many this run removed - of an older generation, stopped, or more than O(warm).", type: int}
    error: {description: Why they could not be refilled (the template's own work was done)., type: str}
    bind_address: {description: The address they publish their port on., type: str, sample: 127.0.0.1}
    port_range: {description: The ports they take theirs from., type: str, sample: 13306-13999}
"""

import os

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.myaas.myaas.plugins.module_utils.templates.branches import make_branch
from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import ENGINES, get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances import warm
from ansible_collections.myaas.myaas.plugins.module_utils.instances.manager import InstanceManager
from ansible_collections.myaas.myaas.plugins.module_utils.instances.ports import parse_range
from ansible_collections.myaas.myaas.plugins.module_utils.instances.warm import WarmPool
from ansible_collections.myaas.myaas.plugins.module_utils.masking.rules import check_rules
from ansible_collections.myaas.myaas.plugins.module_utils.module_runner import run_module
from ansible_collections.myaas.myaas.plugins.module_utils.names import check_name
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.inventory import update_metrics
from ansible_collections.myaas.myaas.plugins.module_utils.host.runner import Runner
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker
from ansible_collections.myaas.myaas.plugins.module_utils.templates.importer import TemplateManager


def removed_warm(done):
    """(changed, report) of the refill after a template's removal: a report only when clones were removed."""
    return (True, done) if done["removed"] else (False, None)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            src=dict(type="path"),
            engine=dict(type="str", choices=sorted(ENGINES), default="mariadb"),
            image=dict(type="str"),
            database=dict(type="str"),
            pool=dict(type="path", default="/var/lib/myaas"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            force=dict(type="bool", default=False),
            post_import_sql=dict(type="list", elements="path", default=[]),
            tuning=dict(type="dict", default={}),
            keep_generations=dict(type="int", default=1),
            restore_jobs=dict(type="int"),
            import_timeout=dict(type="int", default=21600),
            start_timeout=dict(type="int", default=120),
            stop_timeout=dict(type="int", default=900),
            lock_timeout=dict(type="int", default=3600),
            from_instance=dict(type="str"),
            from_bookmark=dict(type="str"),
            requester=dict(type="str"),
            admin=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=60),
            masking=dict(type="dict"),
            checks=dict(type="list", elements="str", default=[]),
            max_shrink=dict(type="float", default=0.5),
            warm=dict(type="int"),
            bind_address=dict(type="str", default="127.0.0.1"),
            port_range=dict(type="str", default="13306-13999", fallback=(env_fallback, ["MYAAS_PORT_RANGE"])),
        ),
        required_if=[("state", "present", ["src", "from_instance"], True)],
        mutually_exclusive=[("src", "from_instance")],
        required_by={"from_bookmark": "from_instance"},
        supports_check_mode=True,
    )

    def action():
        params = dict(module.params)
        check_name("template", params["name"])
        if params["keep_generations"] < 1:
            raise MyaasError("keep_generations must be 1 or more (the current generation counts).")
        params["restore_jobs"] = params["restore_jobs"] or os.cpu_count() or 1
        if not 0 <= params["max_shrink"] <= 1:
            raise MyaasError("max_shrink must be between 0 and 1 (a share of a table's rows; 1.0 turns the check off).")
        if params["masking"] is not None:
            params["masking"] = check_rules(params["masking"])
        for key in ("from_instance", "from_bookmark"):
            if params[key] is not None:
                check_name(key.replace("from_", ""), params[key])
        runner = Runner(module)
        runner.require("btrfs", "docker")
        pool, docker = Pool(params["pool"], runner), Docker(runner)
        manager = TemplateManager(pool, docker, get_engine(params["engine"]), params, module.check_mode)
        clones = WarmPool(pool, docker, get_engine, params["name"], params["lock_timeout"], params["wait_timeout"])
        parse_range(params["port_range"])
        if params["state"] == "absent":
            result = manager.absent()
            if not module.check_mode:
                # The template is gone: so are its warm clones.
                warm.reported(result, lambda: removed_warm(clones.refill()))
                if result["changed"]:
                    update_metrics(pool, docker)
            return result
        if params["from_instance"]:
            source = InstanceManager(pool, docker, get_engine, dict(params, name=params["from_instance"]),
                                     module.check_mode)
            result = make_branch(manager, source, params["from_bookmark"])
            if result["changed"] and not module.check_mode:
                update_metrics(pool, docker)
            return result
        try:
            result = manager.present()
        except Exception:
            if not module.check_mode:
                update_metrics(pool, docker, import_of=params["name"], import_ok=False)
            raise
        result = warm.reported(result, lambda: warm.apply(clones, params["warm"], params["bind_address"],
                                                          params["port_range"], module.check_mode))
        if not module.check_mode:
            warning = update_metrics(pool, docker, import_of=params["name"], import_ok=True)
            result["warnings"] = result.get("warnings", []) + ([warning] if warning else [])
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
