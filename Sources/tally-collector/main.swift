import TallyCommand

await CollectorMain.runAsMain()
