-- What MySQL 8.0+ schemas hold that MariaDB does not, loaded into a source
-- server whose own mysqldump then writes the test dump.
SET NAMES utf8mb4;
CREATE DATABASE app DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
USE app;
CREATE USER 'app'@'10.0.0.%' IDENTIFIED BY 'Prod-Only-9f3b';
GRANT ALL ON app.* TO 'app'@'10.0.0.%';

CREATE TABLE member (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(190) NOT NULL,
  full_name VARCHAR(120) NOT NULL,
  profile JSON NOT NULL,
  -- Personal by its values only: its name says nothing.
  extra JSON NULL,
  email_domain VARCHAR(190) GENERATED ALWAYS AS (SUBSTRING_INDEX(email, '@', -1)) STORED,
  name_length INT GENERATED ALWAYS AS (CHAR_LENGTH(full_name)) VIRTUAL,
  internal_note VARCHAR(60) NOT NULL DEFAULT 'none' INVISIBLE,
  age TINYINT UNSIGNED NOT NULL,
  home POINT NOT NULL SRID 4326,
  CONSTRAINT member_age_ck CHECK (age BETWEEN 16 AND 120),
  UNIQUE KEY uq_member_email (email),
  KEY ix_member_lower_name ((LOWER(full_name))),
  KEY ix_member_city ((CAST(profile->>'$.city' AS CHAR(40)))),
  SPATIAL KEY sx_member_home (home)
) ENGINE=InnoDB;

INSERT INTO member (email, full_name, profile, age, home)
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
SELECT CONCAT('member', i, '@corp-mail.example'), CONCAT('Member Nr ', i),
       JSON_OBJECT('city', ELT(1 + i % 4, 'Berlin', 'Lyon', 'Porto', 'Oslo'), 'tags', JSON_ARRAY('a', i)),
       16 + i % 80, ST_SRID(POINT(10 + i / 100, 50 + i / 1000), 4326)
FROM n;
UPDATE member SET internal_note = CONCAT('note ', id) WHERE id % 10 = 0;
UPDATE member SET extra = JSON_OBJECT('backup', CONCAT('member', id, '@corp-mail.example')) WHERE id % 2 = 0;

CREATE TABLE event_log (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  fired_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
);
CREATE TABLE audit (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  member_id INT UNSIGNED NOT NULL,
  what VARCHAR(20) NOT NULL
);

CREATE DEFINER = 'app'@'10.0.0.%' SQL SECURITY DEFINER VIEW member_by_city AS
  SELECT profile->>'$.city' AS city, COUNT(*) AS members FROM member GROUP BY city;
DELIMITER //
CREATE DEFINER = 'app'@'10.0.0.%' FUNCTION distance_km(a POINT, b POINT) RETURNS DOUBLE DETERMINISTIC
  RETURN ST_Distance_Sphere(a, b) / 1000//
CREATE DEFINER = 'app'@'10.0.0.%' PROCEDURE members_older_than(IN years INT)
BEGIN
  SELECT COUNT(*) FROM member WHERE age > years;
END//
CREATE DEFINER = 'app'@'10.0.0.%' TRIGGER member_audit AFTER UPDATE ON member FOR EACH ROW
  INSERT INTO audit (member_id, what) VALUES (NEW.id, 'update')//
DELIMITER ;
CREATE DEFINER = 'app'@'10.0.0.%' EVENT tick ON SCHEDULE EVERY 1 SECOND ENABLE
  DO INSERT INTO event_log () VALUES ();
