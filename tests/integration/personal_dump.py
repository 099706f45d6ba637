"""A dump full of personal data, for the masking tests, in MariaDB's or PostgreSQL's SQL.

Every original value is distinctive (``orig.person00017@corp-mail.net``), so a
search of a template's files for a sample of them finds them if, and only
if, they are there. Text values stay short: PostgreSQL compresses values of
more than about 2 kB, which a byte search would not see.
"""

import datetime

DOMAIN = "corp-mail.net"


def luhn(payload):
    total = 0
    for position, digit in enumerate(reversed(payload)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return payload + str((10 - total % 10) % 10)


def customer(number):
    return {
        "email": "orig.person%05d@%s" % (number, DOMAIN),
        "full_name": "Origname%05d Surname%05d" % (number, number),
        "phone": "+49 30 %07d" % number,
        "card_number": luhn("5%014d" % number),
        "notes": ("Call +49 30 %07d or write to orig.person%05d@%s" % (number, number, DOMAIN)
                  if number % 3 == 0 else "no remarks"),
        "birth_date": (datetime.date(1970, 1, 1) + datetime.timedelta(days=number)).isoformat(),
        "last_ip": "203.0.%d.%d" % (number // 250 % 250, number % 250 + 1),
        "contact": "+44 20 %07d" % number,
        "city": "Berlin",
    }


def write(path, dialect, customers, orders_per_customer=2):
    text = "VARCHAR(200)" if dialect == "mysql" else "text"
    lines = [
        "CREATE TABLE customer (id INT PRIMARY KEY, email VARCHAR(190) NOT NULL UNIQUE, full_name %s, phone %s, "
        "card_number VARCHAR(25), notes %s, birth_date DATE, last_ip VARCHAR(45), contact %s, city %s);"
        % (text, text, text, text, text),
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_email VARCHAR(190) NOT NULL, amount INT);",
        "CREATE INDEX ix_orders_email ON orders (customer_email);",
        "CREATE TABLE audit_log (id INT PRIMARY KEY, payload %s);" % text,
        "CREATE TABLE product (id INT PRIMARY KEY, name %s, price INT);" % text,
    ]
    rows, orders, audit = [], [], []
    for number in range(1, customers + 1):
        values = customer(number)
        rows.append("(%d, %s)" % (number, ", ".join("'%s'" % values[key] for key in (
            "email", "full_name", "phone", "card_number", "notes", "birth_date", "last_ip", "contact", "city"))))
        for extra in range(orders_per_customer):
            orders.append("(%d, '%s', %d)" % (number * 10 + extra, values["email"], number + extra))
        audit.append("(%d, 'login %s from %s')" % (number, values["email"], values["last_ip"]))
    for table, values in (("customer", rows), ("orders", orders), ("audit_log", audit)):
        for start in range(0, len(values), 500):
            lines.append("INSERT INTO %s VALUES %s;" % (table, ", ".join(values[start:start + 500])))
    lines.append("INSERT INTO product VALUES %s;" % ", ".join("(%d, 'Widget %d', %d)" % (n, n, n) for n in range(1, 51)))
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return path


def originals(customers, every=7):
    """A sample of the original values of the masked and truncated columns."""
    found = []
    for number in range(1, customers + 1, every):
        values = customer(number)
        found += [values["email"], values["full_name"].split()[0], values["phone"], values["card_number"],
                  values["contact"], "login " + values["email"]]
    return found


def masking_rules(prefix, without=()):
    """The rules that cover every personal column of the dump; ``prefix`` is the database
    (MariaDB) or schema (PostgreSQL), ``without`` columns (table.column) to leave out."""
    columns = {"customer.email": "email", "customer.full_name": "name", "customer.phone": "phone",
               "customer.card_number": "credit_card", "customer.notes": "null", "customer.birth_date": "date",
               "customer.last_ip": "ip", "customer.contact": "text", "orders.customer_email": "email"}
    return {"columns": dict(("%s.%s" % (prefix, key), value) for key, value in columns.items() if key not in without),
            "truncate": ["%s.audit_log" % prefix],
            "keep": {"%s.product.name" % prefix: "product names are public"}}
