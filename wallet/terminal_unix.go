//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package wallet

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// terminal reads passphrases from the controlling terminal with echo off, as
// golang.org/x/term's ReadPassword does (that module is not a dependency of Guild).
type terminal struct {
	f  *os.File
	fd int
	rd *bufio.Reader
}

func openTerminal() (*terminal, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, ErrNoTerminal
	}
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, ioctlGetTermios); err != nil {
		f.Close()
		return nil, ErrNoTerminal
	}
	return &terminal{f: f, fd: fd, rd: bufio.NewReader(f)}, nil
}

func (t *terminal) close() { t.f.Close() }

// readHidden prints prompt and reads one line with echo off, restoring the terminal afterwards,
// also when the user interrupts (a terminal left without echo is a nasty surprise).
func (t *terminal) readHidden(prompt string) (string, error) {
	old, err := unix.IoctlGetTermios(t.fd, ioctlGetTermios)
	if err != nil {
		return "", ErrNoTerminal
	}
	hidden := *old
	hidden.Lflag &^= unix.ECHO
	hidden.Lflag |= unix.ICANON | unix.ISIG
	hidden.Iflag |= unix.ICRNL

	var once sync.Once
	restore := func() {
		once.Do(func() {
			_ = unix.IoctlSetTermios(t.fd, ioctlSetTermios, old)
			fmt.Fprintln(t.f) // the newline the user typed was not echoed
		})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			restore()
			code := 1
			if n, ok := s.(syscall.Signal); ok {
				code = 128 + int(n)
			}
			os.Exit(code)
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(done)
		restore()
	}()

	if _, err := fmt.Fprint(t.f, prompt); err != nil {
		return "", fmt.Errorf("wallet: writing to terminal: %w", err)
	}
	if err := unix.IoctlSetTermios(t.fd, ioctlSetTermios, &hidden); err != nil {
		return "", fmt.Errorf("wallet: turning off terminal echo: %w", err)
	}
	line, err := t.rd.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("wallet: reading passphrase: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
