#!/usr/bin/env bash
# First start of the postgres service: Airflow's metadata and the business data in separate databases.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
create database airflow;
create database callfilter;
SQL
