-- A small shop for upgrade rehearsals on PostgreSQL: a view, a materialized
-- view, SQL and PL/pgSQL functions, a procedure, a trigger, and one SQL
-- function that reads a pg_stat_bgwriter column PostgreSQL 17 removed.
CREATE TABLE film (film_id serial PRIMARY KEY, title text NOT NULL, rating text, rental_rate numeric(4, 2));
CREATE TABLE rental (rental_id serial PRIMARY KEY, film_id int NOT NULL REFERENCES film, rented_at timestamptz NOT NULL,
                     returned_at timestamptz);
CREATE TABLE audit_log (id serial PRIMARY KEY, note text);
INSERT INTO film (title, rating, rental_rate) VALUES
  ('ACADEMY DINOSAUR', 'PG', 0.99), ('ACE GOLDFINGER', 'G', 4.99), ('ADAPTATION HOLES', 'NC-17', 2.99),
  ('AFFAIR PREJUDICE', 'G', 2.99), ('AGENT TRUMAN', 'PG', 2.99), ('AIRPLANE SIERRA', 'PG-13', 4.99);
INSERT INTO rental (film_id, rented_at, returned_at) VALUES
  (1, '2005-05-24 22:53:30+00', '2005-05-26 22:04:30+00'), (1, '2005-06-01 10:00:00+00', NULL),
  (2, '2005-05-25 11:30:37+00', '2005-05-28 19:40:33+00'), (4, '2005-05-25 12:00:00+00', NULL),
  (5, '2005-05-26 09:00:00+00', '2005-05-30 09:00:00+00'), (6, '2005-05-27 10:00:00+00', NULL);
CREATE VIEW film_on_loan AS
  SELECT f.title, count(*) AS out_now FROM film f JOIN rental r USING (film_id)
  WHERE r.returned_at IS NULL GROUP BY f.title;
CREATE MATERIALIZED VIEW rating_totals AS SELECT rating, count(*) AS films FROM film GROUP BY rating;
CREATE FUNCTION film_in_stock(p_film_id int) RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT NOT EXISTS (SELECT FROM rental WHERE film_id = p_film_id AND returned_at IS NULL) $$;
CREATE FUNCTION log_rental() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN INSERT INTO audit_log (note) VALUES ('rented film ' || NEW.film_id); RETURN NEW; END $$;
CREATE TRIGGER rental_audit AFTER INSERT ON rental FOR EACH ROW EXECUTE FUNCTION log_rental();
CREATE PROCEDURE rent_film(p_film_id int) LANGUAGE sql
  AS $$ INSERT INTO rental (film_id, rented_at) VALUES (p_film_id, now()) $$;
CREATE FUNCTION backend_buffer_writes() RETURNS bigint LANGUAGE sql
  AS $$ SELECT buffers_backend FROM pg_stat_bgwriter $$;
