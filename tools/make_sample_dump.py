"""Write the sample `shop` dump: a small web shop in mysqldump's (or pg_dump's plain) format.

The committed samples/shop.sql.gz comes from the defaults; raise --customers
for a bigger dump (rows scale with it, about 0.45 MB of SQL per 1000 customers):

    python3 tools/make_sample_dump.py --customers 100000 -o /tmp/shop-big.sql.gz
    python3 tools/make_sample_dump.py --dialect postgresql -o /tmp/shop-pg.sql.gz
"""

import argparse
import datetime
import gzip
import io
import itertools
import random
import sys

SCHEMA = """\
SET NAMES utf8mb4;
SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0;
SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0;

DROP TABLE IF EXISTS `reviews`;
DROP TABLE IF EXISTS `order_items`;
DROP TABLE IF EXISTS `orders`;
DROP TABLE IF EXISTS `products`;
DROP TABLE IF EXISTS `categories`;
DROP TABLE IF EXISTS `customers`;
DROP VIEW IF EXISTS `order_totals`;

CREATE TABLE `customers` (
  `id` int unsigned NOT NULL AUTO_INCREMENT,
  `email` varchar(190) NOT NULL,
  `full_name` varchar(200) NOT NULL,
  `city` varchar(100) NOT NULL,
  `created_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_customers_email` (`email`),
  KEY `ix_customers_city` (`city`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `categories` (
  `id` smallint unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(100) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `products` (
  `id` int unsigned NOT NULL AUTO_INCREMENT,
  `category_id` smallint unsigned NOT NULL,
  `sku` char(12) NOT NULL,
  `name` varchar(200) NOT NULL,
  `description` text NOT NULL,
  `price_cents` int unsigned NOT NULL,
  `stock` int NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_products_sku` (`sku`),
  KEY `ix_products_category` (`category_id`),
  CONSTRAINT `fk_products_category` FOREIGN KEY (`category_id`) REFERENCES `categories` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `orders` (
  `id` int unsigned NOT NULL AUTO_INCREMENT,
  `customer_id` int unsigned NOT NULL,
  `status` enum('new','paid','shipped','cancelled') NOT NULL,
  `ordered_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_orders_customer` (`customer_id`,`ordered_at`),
  CONSTRAINT `fk_orders_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `order_items` (
  `order_id` int unsigned NOT NULL,
  `product_id` int unsigned NOT NULL,
  `quantity` smallint unsigned NOT NULL,
  `price_cents` int unsigned NOT NULL,
  PRIMARY KEY (`order_id`,`product_id`),
  KEY `ix_order_items_product` (`product_id`),
  CONSTRAINT `fk_order_items_order` FOREIGN KEY (`order_id`) REFERENCES `orders` (`id`) ON DELETE CASCADE,
  CONSTRAINT `fk_order_items_product` FOREIGN KEY (`product_id`) REFERENCES `products` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `reviews` (
  `id` int unsigned NOT NULL AUTO_INCREMENT,
  `product_id` int unsigned NOT NULL,
  `customer_id` int unsigned NOT NULL,
  `stars` tinyint unsigned NOT NULL,
  `body` text NOT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_reviews_product` (`product_id`),
  CONSTRAINT `fk_reviews_product` FOREIGN KEY (`product_id`) REFERENCES `products` (`id`),
  CONSTRAINT `fk_reviews_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
"""

ROUTINES = """\
CREATE VIEW `order_totals` AS
  SELECT o.id AS order_id, o.customer_id, SUM(i.quantity * i.price_cents) AS total_cents
  FROM orders o JOIN order_items i ON i.order_id = o.id
  GROUP BY o.id, o.customer_id;

DELIMITER ;;
CREATE TRIGGER `order_items_take_stock` AFTER INSERT ON `order_items` FOR EACH ROW
BEGIN
  UPDATE products SET stock = stock - NEW.quantity WHERE id = NEW.product_id;
END ;;
DELIMITER ;

SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS;
SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS;
"""

PG_SCHEMA = """\
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

CREATE TABLE customers (
  id integer PRIMARY KEY,
  email varchar(190) NOT NULL UNIQUE,
  full_name varchar(200) NOT NULL,
  city varchar(100) NOT NULL,
  created_at timestamp NOT NULL
);
CREATE INDEX ix_customers_city ON customers (city);

CREATE TABLE categories (
  id smallint PRIMARY KEY,
  name varchar(100) NOT NULL
);

CREATE TABLE products (
  id integer PRIMARY KEY,
  category_id smallint NOT NULL REFERENCES categories (id),
  sku char(12) NOT NULL UNIQUE,
  name varchar(200) NOT NULL,
  description text NOT NULL,
  price_cents integer NOT NULL,
  stock integer NOT NULL
);
CREATE INDEX ix_products_category ON products (category_id);

CREATE TABLE orders (
  id integer PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES customers (id),
  status varchar(10) NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
  ordered_at timestamp NOT NULL
);
CREATE INDEX ix_orders_customer ON orders (customer_id, ordered_at);

CREATE TABLE order_items (
  order_id integer NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  product_id integer NOT NULL REFERENCES products (id),
  quantity smallint NOT NULL,
  price_cents integer NOT NULL,
  PRIMARY KEY (order_id, product_id)
);
CREATE INDEX ix_order_items_product ON order_items (product_id);

CREATE TABLE reviews (
  id integer PRIMARY KEY,
  product_id integer NOT NULL REFERENCES products (id),
  customer_id integer NOT NULL REFERENCES customers (id),
  stars smallint NOT NULL,
  body text NOT NULL
);
CREATE INDEX ix_reviews_product ON reviews (product_id);
"""

PG_ROUTINES = """\
CREATE SEQUENCE orders_id_seq OWNED BY orders.id;
SELECT setval('orders_id_seq', (SELECT MAX(id) FROM orders));
ALTER TABLE orders ALTER COLUMN id SET DEFAULT nextval('orders_id_seq');

CREATE VIEW order_totals AS
  SELECT o.id AS order_id, o.customer_id, SUM(i.quantity * i.price_cents) AS total_cents
  FROM orders o JOIN order_items i ON i.order_id = o.id
  GROUP BY o.id, o.customer_id;

CREATE FUNCTION order_items_take_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE products SET stock = stock - NEW.quantity WHERE id = NEW.product_id;
  RETURN NEW;
END
$$;
CREATE TRIGGER order_items_take_stock AFTER INSERT ON order_items
  FOR EACH ROW EXECUTE FUNCTION order_items_take_stock();
"""

FIRST = ["Ana", "Björn", "Chloé", "Dmitri", "Eşref", "Fatima", "Grzegorz", "Hana", "Ióannis", "José",
         "Kazuki", "Łucja", "Mia", "Nguyễn", "Olúwaseun", "Priya", "Søren", "Zoë"]
LAST = ["García", "Müller", "Nowak", "O'Brien", "Rossi", "Sato", "Øvergaard", "Dubois", "Kowalski",
        "Smith", "Đorđević", "Yılmaz"]
CITIES = ["Zürich", "München", "São Paulo", "Kraków", "Reykjavík", "Malmö", "Tōkyō", "Dublin", "Lyon"]
WORDS = ["sturdy", "light", "handmade", "organic", "compact", "vintage", "smart", "quiet", "bright",
         "café", "naïve", "crème", "déjà", "piñata", "Grüße", "日本", "😀", "👍"]
CATEGORIES = ["Books", "Kitchen", "Garden", "Toys", "Music", "Outdoor", "Office", "Bikes"]
BATCH = 500


def quote_mysql(value):
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def quote_standard(value):
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


DIALECTS = {
    "mysql": {"schema": SCHEMA, "routines": ROUTINES, "quote": quote_mysql, "table": "`%s`"},
    "postgresql": {"schema": PG_SCHEMA, "routines": PG_ROUTINES, "quote": quote_standard, "table": "%s"},
}


def inserts(out, dialect, table, rows):
    """Extended INSERTs of BATCH rows each; ``rows`` is consumed lazily, so size costs no memory."""
    rows = iter(rows)
    quote = dialect["quote"]
    while True:
        chunk = list(itertools.islice(rows, BATCH))
        if not chunk:
            return
        values = ",".join("(" + ",".join(quote(v) for v in row) + ")" for row in chunk)
        out.write("INSERT INTO %s VALUES %s;\n" % (dialect["table"] % table, values))


def sentence(rng, words):
    return " ".join(rng.choice(WORDS) for _word in range(words)).capitalize() + "."


def write_dump(out, customers, seed, dialect_name="mysql"):
    dialect = DIALECTS[dialect_name]
    rng = random.Random(seed)
    epoch = datetime.datetime(2020, 1, 1)
    products = max(50, customers // 5)
    orders = customers * 2

    out.write("-- MyAAS sample dump `shop` (tools/make_sample_dump.py --customers %d --seed %d%s)\n"
              % (customers, seed, "" if dialect_name == "mysql" else " --dialect " + dialect_name))
    out.write(dialect["schema"])
    inserts(out, dialect, "categories", [(i + 1, name) for i, name in enumerate(CATEGORIES)])
    inserts(out, dialect, "customers", (
        (i, f"customer{i}@example.org", f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(CITIES),
         str(epoch + datetime.timedelta(minutes=rng.randrange(2_000_000))))
        for i in range(1, customers + 1)))
    inserts(out, dialect, "products", (
        (i, rng.randrange(len(CATEGORIES)) + 1, f"SKU{i:09d}", sentence(rng, 3), sentence(rng, 25),
         rng.randrange(100, 100_000), rng.randrange(1000, 100_000))
        for i in range(1, products + 1)))
    inserts(out, dialect, "orders", (
        (i, rng.randrange(customers) + 1, rng.choice(["new", "paid", "shipped", "cancelled"]),
         str(epoch + datetime.timedelta(minutes=rng.randrange(2_000_000))))
        for i in range(1, orders + 1)))
    inserts(out, dialect, "order_items", (
        (order, product, rng.randrange(1, 5), rng.randrange(100, 100_000))
        for order in range(1, orders + 1)
        for product in rng.sample(range(1, products + 1), rng.randrange(1, 4))))
    inserts(out, dialect, "reviews", (
        (i, rng.randrange(products) + 1, rng.randrange(customers) + 1, rng.randrange(1, 6),
         sentence(rng, 40))
        for i in range(1, customers // 2 + 1)))
    out.write(dialect["routines"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=6000, help="number of customers (default 6000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same dump")
    parser.add_argument("--dialect", choices=sorted(DIALECTS), default="mysql",
                        help="mysql (mysqldump, also for MariaDB) or postgresql (pg_dump plain format)")
    parser.add_argument("-o", "--output", default="-", help="file to write (.gz is compressed); - for stdout")
    args = parser.parse_args(argv)
    if args.output == "-":
        write_dump(sys.stdout, args.customers, args.seed, args.dialect)
    elif args.output.endswith(".gz"):
        # mtime=0 keeps the committed file byte-identical across regenerations.
        with open(args.output, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
            with io.TextIOWrapper(gz, encoding="utf-8") as out:
                write_dump(out, args.customers, args.seed, args.dialect)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            write_dump(out, args.customers, args.seed, args.dialect)
    return 0


if __name__ == "__main__":
    sys.exit(main())
