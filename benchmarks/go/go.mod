module goconc.example/gobench

go 1.19
