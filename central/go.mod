module github.com/chasqui/chasqui/central

go 1.26

replace (
	github.com/chasqui/chasqui/gen => ../gen
	github.com/chasqui/chasqui/internal => ../internal
)
