-- A small shop for upgrade rehearsals on MariaDB and MySQL: tables, a view,
-- a trigger, routines that work on every version, and (MariaDB only, added by
-- the test) one that reads a system variable MariaDB 11 removed.
CREATE TABLE film (
  film_id INT PRIMARY KEY AUTO_INCREMENT,
  title VARCHAR(128) NOT NULL,
  rating ENUM('G', 'PG', 'PG-13', 'R', 'NC-17') DEFAULT 'G',
  rental_rate DECIMAL(4, 2) NOT NULL DEFAULT 4.99,
  last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  FULLTEXT KEY title_text (title)
) ENGINE=InnoDB;
CREATE TABLE rental (
  rental_id INT PRIMARY KEY AUTO_INCREMENT,
  film_id INT NOT NULL,
  rented_at DATETIME NOT NULL,
  returned_at DATETIME NULL,
  CONSTRAINT rental_film FOREIGN KEY (film_id) REFERENCES film (film_id)
) ENGINE=InnoDB;
CREATE TABLE audit_log (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(200)) ENGINE=InnoDB;
INSERT INTO film (title, rating, rental_rate) VALUES
  ('ACADEMY DINOSAUR', 'PG', 0.99), ('ACE GOLDFINGER', 'G', 4.99), ('ADAPTATION HOLES', 'NC-17', 2.99),
  ('AFFAIR PREJUDICE', 'G', 2.99), ('AGENT TRUMAN', 'PG', 2.99), ('AIRPLANE SIERRA', 'PG-13', 4.99);
INSERT INTO rental (film_id, rented_at, returned_at) VALUES
  (1, '2005-05-24 22:53:30', '2005-05-26 22:04:30'), (1, '2005-06-01 10:00:00', NULL),
  (2, '2005-05-25 11:30:37', '2005-05-28 19:40:33'), (4, '2005-05-25 12:00:00', NULL),
  (5, '2005-05-26 09:00:00', '2005-05-30 09:00:00'), (6, '2005-05-27 10:00:00', NULL);
CREATE VIEW film_on_loan AS
  SELECT f.title, COUNT(*) AS out_now FROM film f JOIN rental r USING (film_id)
  WHERE r.returned_at IS NULL GROUP BY f.title;
DELIMITER ;;
CREATE TRIGGER rental_audit AFTER INSERT ON rental FOR EACH ROW
  INSERT INTO audit_log (note) VALUES (CONCAT('rented film ', NEW.film_id));;
CREATE FUNCTION film_in_stock(p_film_id INT) RETURNS INT READS SQL DATA
BEGIN
  DECLARE loaned INT;
  SELECT COUNT(*) INTO loaned FROM rental WHERE film_id = p_film_id AND returned_at IS NULL;
  RETURN IF(loaned = 0, 1, 0);
END;;
CREATE PROCEDURE rent_film(IN p_film_id INT, OUT p_rental_id INT)
BEGIN
  INSERT INTO rental (film_id, rented_at) VALUES (p_film_id, NOW());
  SET p_rental_id = LAST_INSERT_ID();
END;;
DELIMITER ;
