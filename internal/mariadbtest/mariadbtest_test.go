package mariadbtest

import (
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestSharedDatabaseAndUser(t *testing.T) {
	s := Shared(t)
	db := s.NewDatabase(t)
	s.Exec(t, "CREATE TABLE "+QuoteIdent(db)+".d (name varchar(64)); INSERT INTO "+QuoteIdent(db)+".d VALUES ('example.com')")
	s.GrantUser(t, "lookup", "se'cret", db)
	rows, err := QueryDB(s.DB(t, "lookup", "se'cret", db), "SELECT name FROM d")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0][0] != "example.com" {
		t.Errorf("rows = %q, want [[example.com]]", rows)
	}
	if Shared(t) != s {
		t.Errorf("Shared returned a second server")
	}
}

func TestLoadSQLAndReset(t *testing.T) {
	s := Shared(t)
	s.LoadSQL(t, "CREATE DATABASE resetme;\nDELIMITER //\nCREATE PROCEDURE resetme.p() BEGIN SELECT 1; END//\nDELIMITER ;\nCREATE USER 'fixed'@'localhost' IDENTIFIED BY 'x';\n")
	s.Reset(t)
	if got := s.Query(t, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name='resetme'"); got[0][0] != "0" {
		t.Errorf("resetme still exists after Reset")
	}
	if got := s.Query(t, "SELECT COUNT(*) FROM mysql.global_priv WHERE user='fixed'"); got[0][0] != "0" {
		t.Errorf("user fixed still exists after Reset")
	}
}

func TestStopRestart(t *testing.T) {
	s := Start(t)
	s.Exec(t, "CREATE DATABASE keep")
	s.Stop(t)
	if _, err := QueryDB(s.DB(t, "root", "", ""), "SELECT 1"); err == nil {
		t.Fatalf("query on a stopped server succeeded")
	}
	s.Restart(t)
	if got := s.Query(t, "SHOW DATABASES LIKE 'keep'"); len(got) != 1 {
		t.Errorf("database keep lost across Restart: %q", got)
	}
}
