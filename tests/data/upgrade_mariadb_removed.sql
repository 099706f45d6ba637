-- Run after upgrade_mariadb.sql on MariaDB 10.11: innodb_change_buffering is
-- gone in MariaDB 11 (the change buffer was removed), so this function no
-- longer compiles there.
CREATE FUNCTION change_buffering() RETURNS VARCHAR(20) DETERMINISTIC RETURN @@innodb_change_buffering;
