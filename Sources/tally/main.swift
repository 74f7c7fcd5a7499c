import TallyCLI

await Tally.runAsMain()
