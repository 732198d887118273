SELECT ')pass_sql"';
