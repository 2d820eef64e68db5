-- Job names are as long as the workflow's name attribute (up to 128 KiB): PostgreSQL
-- enforces VARCHAR lengths (SQLite does not), so the column becomes TEXT here.
ALTER TABLE jobs ALTER COLUMN name TYPE TEXT;
