// Package sdktest tests spool's SQS front (package sqs) with the AWS SDKs for Go: the
// current one (aws-sdk-go-v2, AWS JSON protocol) and v1 (aws-sdk-go 1.44, query protocol
// with XML answers). It is a module of its own so that the SDKs stay out of spool's
// dependencies; .ci/run runs it.
package sdktest
