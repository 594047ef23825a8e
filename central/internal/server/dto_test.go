package server_test

import dto "github.com/prometheus/client_model/go"

type dtoFamily = dto.MetricFamily

func labels(ls []*dto.LabelPair) map[string]string {
	m := map[string]string{}
	for _, l := range ls {
		m[l.GetName()] = l.GetValue()
	}
	return m
}
